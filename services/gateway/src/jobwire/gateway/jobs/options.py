"""``backend_options`` checked at submit against the schemas the job's candidate nodes publish with
their capacity: the gateway names the bad field (422) without knowing any backend's options.

The candidates are the nodes ``contracts.v1.feasibility`` says could run the job (the scheduler's own
rules), read from the gateway's in-memory node snapshot: no query, nothing written.
"""

from __future__ import annotations

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility
from jobwire.contracts.v1.options import asks_problem, problem

from ..problems import InvalidBody
from ..resources import Resources


def check_backend_options(res: Resources, spec: v1.JobSpec, owner: str | None = None) -> None:
    """422 unless the options fit the schema of some node the job may land on.

    No candidate known (no node registered yet): left to the executor, which decodes them with its
    own type and refuses the start naming the field.
    """
    if not spec.backend_options:
        return
    errors: dict[str, str] = {}
    for node in res.nodes.nodes.values():
        if not feasibility.eligible(node, spec, owner):
            continue
        schema = node.capacity.options_schema
        if schema is None:
            errors.setdefault(node.backend, f"the {node.backend} backend takes no backend_options")
            continue
        why = problem(spec.backend_options, schema) or asks_problem(spec, schema)
        if why is None:
            return
        errors.setdefault(node.backend, why)
    if errors:
        detail = "; ".join(f"{backend}: {why}" for backend, why in sorted(errors.items()))
        first = min(errors.values())
        path = first.split(":", 1)[0] if first.startswith("$.") else "$.backend_options"
        raise InvalidBody(f"backend_options fit no node this job may run on: {detail}", extra={"path": path})
