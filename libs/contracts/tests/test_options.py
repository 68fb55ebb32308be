"""Backend options checked against a backend's published schema, as the gateway does at submit."""

import re

import msgspec
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


SGE = schema_of(v1.SgeOptions)
TORQUE = schema_of(v1.TorqueOptions)
SSH = schema_of(v1.SshOptions)
TYPES = {id(SLURM): v1.SlurmOptions, id(SGE): v1.SgeOptions, id(TORQUE): v1.TorqueOptions}
TYPES |= {id(SSH): v1.SshOptions, id(DOCKER): v1.DockerOptions}


@pytest.mark.parametrize(
    ("schema", "options", "path", "says"),
    [
        (SLURM, {"partition": "debug\n#SBATCH --uid=0"}, "partition", "matching"),
        (SLURM, {"partition": "debug\n"}, "partition", "matching"),
        (SLURM, {"account": "a b"}, "account", "matching"),
        (SLURM, {"qos": "$(id)"}, "qos", "matching"),
        (SLURM, {"gres": "gpu:1;id"}, "gres", "matching"),
        (SLURM, {"constraints": "a100\n#SBATCH --gres=gpu:8"}, "constraints", "matching"),
        (SLURM, {"setup": "x" * 65537}, "setup", "at most 65536"),
        (SGE, {"queue": "#$ -q root.q"}, "queue", "matching"),
        (SGE, {"parallel_environment": "smp 64"}, "parallel_environment", "matching"),
        (TORQUE, {"ppn": 0}, "ppn", ">= 1"),
        (TORQUE, {"ppn": 5000}, "ppn", "<= 4096"),
        (TORQUE, {"nodes": "1:ppn=2 -q root"}, "nodes", "matching"),
        (SSH, {"gpu_ids": [-1]}, "gpu_ids[0]", ">= 0"),
        (SSH, {"gpu_ids": list(range(65))}, "gpu_ids", "at most 64 items"),
        (DOCKER, {"network": "a b"}, "network", "matching"),
        (DOCKER, {"gpu_ids": ["0 1"]}, "gpu_ids[0]", "matching"),
    ],
)
def test_values_no_node_could_take_are_refused_naming_the_field(schema, options, path, says):
    """Issue 16: the rules beyond types (patterns, lengths, ranges) are in the published schema, so
    the gateway refuses them at submit; the executor's own decode of the type agrees."""
    why = problem(options, schema)
    assert why is not None and why.startswith(f"$.backend_options.{path}: "), why
    assert says in why
    with pytest.raises(msgspec.ValidationError, match=r"\$\." + re.escape(path.split("[")[0])):
        msgspec.convert(options, TYPES[id(schema)])


def test_plain_batch_values_pass():
    fine = [
        (SLURM, {"partition": "debug,gpu", "account": "proj-1.a", "qos": "normal", "setup": "module load x"}),
        (SLURM, {"constraints": "a100&(ib|eth)", "gres": "gpu:a100:2"}),
        (SGE, {"queue": "all.q@node1", "parallel_environment": "mpi*"}),
        (TORQUE, {"nodes": "2:ppn=8+n5", "ppn": 8, "queue": "batch"}),
        (SSH, {"gpu_ids": [0, 3]}),
    ]
    for schema, options in fine:
        assert problem(options, schema) is None, options
        msgspec.convert(options, TYPES[id(schema)])
