"""slurm-rest tells infrastructure faults (slurmrestd down, 5xx, a rejected or expired JWT) from
requests slurmctld refused: the first make a job wait, the second fail it. Bodies as slurmrestd
22.05 (v0.0.38: ``error``/``errno``) and 23.02+ (``error_number``/``description``) write them."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from jobwire.execution.hpc import SchedulerError, SchedulerUnavailable
from jobwire.execution.transport import ExecResult
from jobwire.executor_hpc.schedulers.slurm_rest import SlurmRest, token_expiry

pytestmark = pytest.mark.unit


def answer(status: int, body: object) -> ExecResult:
    return ExecResult(0, json.dumps(body).encode() + f"\n{status}".encode(), b"")


def jwt(exp: float) -> str:
    def b64(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256'})}.{b64({'exp': int(exp), 'sun': 'root'})}.c2ln"


@pytest.fixture
def rest(tmp_path: Path) -> SlurmRest:
    token = tmp_path / "slurm.jwt"
    token.write_text(jwt(time.time() + 600))
    return SlurmRest(options={"token_file": str(token), "version": "v0.0.38"})


def test_unreachable_slurmrestd_is_an_infrastructure_fault(rest):
    refused = ExecResult(7, b"", b"curl: (7) Failed to connect to 127.0.0.1 port 6820: Connection refused")
    with pytest.raises(SchedulerUnavailable, match="Connection refused"):
        rest.parse_submit(refused)
    with pytest.raises(SchedulerUnavailable):
        rest.parse_list(ExecResult(28, b"", b"curl: (28) Operation timed out"), ["1"])
    # a curl failure of ours (the job description file unreadable) is not the service's
    with pytest.raises(SchedulerError) as e:
        rest.parse_submit(ExecResult(26, b"", b"curl: (26) Failed to open/read local data"))
    assert not isinstance(e.value, SchedulerUnavailable)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_token_names_the_token_file(rest, status):
    with pytest.raises(SchedulerUnavailable, match="JOBWIRE_HPC_REST_TOKEN_FILE") as e:
        rest.parse_submit(answer(status, {"errors": [{"error": "Authentication failure"}]}))
    assert rest.options["token_file"] in str(e.value)


def test_zero_bytes_500_of_a_refused_token_points_at_the_token(rest):
    body = {"errors": [{"error": "Zero Bytes were transmitted or received", "errno": 1046}]}
    with pytest.raises(
        SchedulerUnavailable, match=r"HTTP 500.*check the token in JOBWIRE_HPC_REST_TOKEN_FILE"
    ):
        rest.parse_submit(answer(500, body))


@pytest.mark.parametrize(
    "body",
    [
        {"errors": [{"error": "Unable to contact slurm controller (connect failure)", "errno": 1001}]},
        {"errors": []},
        "<html>502 Bad Gateway</html>",
    ],
)
def test_other_5xx_are_infrastructure_faults(rest, body):
    with pytest.raises(SchedulerUnavailable):
        rest.parse_list(answer(503 if isinstance(body, str) else 500, body), ["1"])


def test_a_request_slurmctld_refused_fails_the_job(rest):
    body = {
        "errors": [{"description": "Invalid partition name specified", "error_number": 2000, "error": "x"}]
    }
    with pytest.raises(SchedulerError, match="Invalid partition name specified") as e:
        rest.parse_submit(answer(500, body))
    assert not isinstance(e.value, SchedulerUnavailable)
    with pytest.raises(SchedulerError) as e:
        rest.parse_submit(answer(400, {"errors": [{"error": "bad request"}]}))
    assert not isinstance(e.value, SchedulerUnavailable)


def test_an_expired_token_is_not_sent_and_its_file_is_named(rest):
    Path(rest.options["token_file"]).write_text(jwt(time.time() - 5))
    with pytest.raises(SchedulerUnavailable, match=r"JOBWIRE_HPC_REST_TOKEN_FILE \(.*\) expired at"):
        rest.headers()
    Path(rest.options["token_file"]).write_text(jwt(time.time() + 60))
    assert b"X-SLURM-USER-TOKEN: " in rest.headers()
    Path(rest.options["token_file"]).unlink()
    with pytest.raises(SchedulerUnavailable, match="cannot read the slurmrestd token"):
        rest.headers()


def test_token_expiry_reads_only_well_formed_tokens():
    assert token_expiry(jwt(1234)) == 1234
    assert token_expiry("not-a-jwt") is None
    assert token_expiry("a.!!!.c") is None
