"""Backend options checked against a backend's published schema, as the gateway does at submit."""

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1.options import problem, schema_of

pytestmark = pytest.mark.unit
SLURM = schema_of(v1.SlurmOptions)
DOCKER = schema_of(v1.DockerOptions)


def test_options_that_fit_the_schema_pass():
    assert problem({"partition": "debug", "qos": None}, SLURM) is None
    assert problem({"shm_size": "1G", "gpu_ids": ["0"], "ports": [8888]}, DOCKER) is None


def test_a_bad_option_is_named_by_its_path():
    assert problem({"partition": 5}, SLURM).startswith("$.backend_options.partition: expected string")  # type: ignore[union-attr]
    assert problem({"gpu_ids": ["0", 1]}, DOCKER).startswith("$.backend_options.gpu_ids[1]: expected string")  # type: ignore[union-attr]
    unknown = problem({"partiton": "debug"}, SLURM)
    assert unknown is not None and unknown.startswith("$.backend_options.partiton: unknown option")
    assert "partition" in unknown  # the options it does take are listed


def test_options_round_trip_as_the_job_carries_them():
    spec = v1.convert_strict({"command": ["true"], "backend_options": {"partition": "debug"}}, v1.JobSpec)
    assert v1.decode(v1.encode(spec), v1.JobSpec).backend_options == {"partition": "debug"}
