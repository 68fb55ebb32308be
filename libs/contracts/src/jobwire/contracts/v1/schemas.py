"""JSON Schema of every v1 message, written to ``libs/contracts/schemas/v1/``.

Run ``python -m jobwire.contracts.v1.schemas [DIR]`` after changing a contract; a test fails when
the committed files drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from . import job, messages, programs, spec, workflows

SCHEMAS: dict[str, Any] = {
    "JobSpec": spec.JobSpec,
    "Job": job.Job,
    "NodeView": job.NodeView,
    "ArrayView": job.ArrayView,
    "Command": messages.Command,
    "Work": messages.Work,
    "Report": messages.Report,
    "ReportMessage": messages.ReportMessage,
    "Event": messages.Event,
    "LogChunk": messages.LogChunk,
    "NodeHeartbeat": messages.NodeHeartbeat,
    "ProgramCatalog": programs.ProgramCatalog,
    "ProgramView": programs.ProgramView,
    "WorkflowSpec": workflows.WorkflowSpec,
    "WorkflowView": workflows.WorkflowView,
}

DEFAULT_DIR = Path(__file__).resolve().parents[4] / "schemas" / "v1"


def render() -> dict[str, str]:
    """File name -> pretty JSON text, deterministic."""
    out = {}
    for name, tp in SCHEMAS.items():
        schema = msgspec.json.schema(tp)
        out[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in render().items():
        path = directory / fname
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    for p in write(target):
        print(p)
