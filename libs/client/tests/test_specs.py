"""Building a JobSpec from ``jobwire submit`` arguments, before anything is sent."""

from pathlib import Path

import pytest

from jobwire.client.specs import UsageError, build_spec

pytestmark = pytest.mark.unit


def test_command_with_flags() -> None:
    spec = build_spec(
        command=["python", "-c", "print(1)"],
        flags={
            "gpus": 2,
            "cpus": 4.0,
            "memory": "4G",
            "walltime": "1h",
            "expected_time": "10m",
            "priority": 5,
        },
        env_pairs=["A=1", "B=x=y"],
        label_pairs=["team=ml"],
    )
    assert spec.command == ["python", "-c", "print(1)"]
    assert spec.name == "python"
    assert (spec.resources.gpus, spec.resources.cpus) == (2, 4.0)
    assert spec.resources.memory_bytes == 4 * 1024**3
    assert spec.resources.walltime_seconds == 3600
    assert spec.expected_runtime == 600
    assert spec.env == {"A": "1", "B": "x=y"}
    assert spec.labels == {"team": "ml"}
    assert spec.priority == 5


def test_code_file_takes_args_after_dashes(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    spec = build_spec(file=str(script), command=["--epochs", "3"], interpreter="python3 -u")
    assert spec.code is not None
    assert (spec.code.filename, spec.code.content) == ("train.py", "print('hi')\n")
    assert spec.code.interpreter == ["python3", "-u"]
    assert spec.args == ["--epochs", "3"]
    assert spec.command is None
    assert spec.name == "train.py"


def test_yaml_spec_with_flags_on_top(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: base\ncommand: [echo, hi]\nresources: {cpus: 2}\nexpected_runtime: 5m\nenv: {A: '1'}\n"
    )
    spec = build_spec(file=str(path), flags={"gpus": 1}, env_pairs=["B=2"])
    assert spec.name == "base"
    assert spec.command == ["echo", "hi"]
    assert (spec.resources.cpus, spec.resources.gpus) == (2, 1)
    assert spec.expected_runtime == 300
    assert spec.env == {"A": "1", "B": "2"}


def test_bare_env_name_copies_our_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert build_spec(command=["x"], env_pairs=["WANDB_MODE"]).env == {"WANDB_MODE": "offline"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "nothing to run"),
        ({"command": ["x"], "flags": {"memory": "lots"}}, "not a size"),
        ({"command": ["x"], "flags": {"expected_time": "soon"}}, "--expected-time"),
        ({"command": ["x"], "label_pairs": ["novalue"]}, "KEY=VALUE"),
        ({"command": ["x"], "env_pairs": ["JOBWIRE_X=1"]}, "set by jobwire"),
    ],
)
def test_bad_input_is_a_usage_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_spec(**kwargs)  # type: ignore[arg-type]


def test_typo_in_a_spec_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"command": ["x"], "resorces": {}}')
    with pytest.raises(UsageError, match="resorces"):
        build_spec(spec_file=str(path))
