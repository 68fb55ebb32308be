"""Adapters on recorded real output: SLURM 22.05 and SGE 8.1.9 recorded on the test clusters here,
Torque ``qstat -f`` and ``qstat -x`` written after Torque's sources and published real outputs (no
server is packaged; sources in data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, SlurmOptions
from jobwire.execution.hpc import BatchRequest, Phase, SchedulerError
from jobwire.execution.transport import ExecResult
from jobwire.executor_hpc.schedulers.lsf import Lsf
from jobwire.executor_hpc.schedulers.sge import Sge
from jobwire.executor_hpc.schedulers.slurm import Slurm, exit_code_of
from jobwire.executor_hpc.schedulers.slurm_rest import SlurmRest, job_description
from jobwire.executor_hpc.schedulers.torque import Pbs, Torque, parse_qstat_f, parse_qstat_x
from jobwire.executor_hpc.settings import hpc_settings

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"


def ok(name: str, rc: int = 0, stderr: bytes = b"") -> ExecResult:
    return ExecResult(rc, (DATA / name).read_bytes(), stderr)


def test_squeue_with_separators_in_names_and_held_pending_jobs():
    q = Slurm().parse_list(ok("slurm-22.05-squeue.txt"), ["1", "2", "3", "4", "99"])
    assert set(q) == {"1", "2", "3", "4"}  # 99 left the queue: absent
    assert (q["1"].native, q["1"].phase, q["1"].reason) == ("FAILED", Phase.DONE, "NonZeroExitCode")
    assert (q["3"].phase, q["3"].reason, q["3"].nodes) == (Phase.HELD, "JobHeldUser", [])
    assert (q["4"].phase, q["4"].nodes) == (Phase.RUNNING, ["localhost"])


def test_squeue_of_only_purged_ids_is_an_empty_list():
    gone = ExecResult(1, b"", b"slurm_load_jobs error: Invalid job id specified\n")
    assert Slurm().parse_list(gone, ["7"]) == {}


def test_sacct_exit_codes_states_and_usage():
    a = Slurm().parse_accounting(ok("slurm-22.05-sacct.txt"), ["1", "2", "3", "4", "5", "6"])
    assert (a["1"].exit_code, a["1"].outcome, a["1"].final) == (3, None, True)
    assert a["1"].usage.max_rss_bytes == 3088 * 1024 and a["1"].usage.node_list == ["localhost"]
    assert a["3"].final is False  # still pending in accounting
    assert (a["4"].native, a["4"].final) == ("RUNNING", False)
    t = Slurm().parse_accounting(ok("slurm-22.05-sacct-timeout.txt"), ["4"])["4"]
    assert (t.outcome, t.native, t.final, t.usage.wall_seconds) == (JobState.TIMED_OUT, "TIMEOUT", True, 64.0)
    assert a["5"].usage.cpu_seconds == pytest.approx(2.718) and a["5"].usage.max_rss_bytes == 991288 * 1024
    assert a["6"].usage.wall_seconds == 2.0


def test_slurm_exit_code_text():
    assert [exit_code_of(x) for x in ("0:0", "3:0", "0:15", "x")] == [0, 3, 143, None]


def test_sge_qstat_xml_includes_pending_and_held_jobs():
    q = Sge().parse_list(ok("sge-8.1.9-qstat.xml"), ["2", "3", "9"])
    assert (q["3"].phase, q["3"].nodes) == (Phase.RUNNING, ["vm"])
    assert (q["2"].native, q["2"].phase) == ("hqw", Phase.HELD)
    assert "9" not in q


def test_sge_qacct_with_units_limits_and_deletes():
    a = Sge().parse_accounting(ok("sge-8.1.9-qacct.txt"), ["3", "4", "5"])
    assert (a["3"].outcome, a["3"].exit_code) == (JobState.TIMED_OUT, 137)
    assert a["3"].usage.cpu_seconds == pytest.approx(0.018)
    # qacct prints ru_maxrss (KiB from getrusage) as bytes: "4.809KB" is a 4.8 MiB shell
    assert a["3"].usage.max_rss_bytes == int(4.809 * 1024) * 1024 and a["3"].usage.node_list == ["vm"]
    assert a["3"].usage.max_vmem_bytes == int(3.398 * 1024**2)
    assert a["3"].usage.io_bytes == int(46.137 * 1024)
    assert (a["4"].outcome, a["4"].exit_code) == (None, 3)
    assert a["5"].exit_code == 137  # qdel: failed 100, exit 137


def test_sge_pending_reasons_from_qstat_j():
    """qstat -xml -j 1,3: job 3's own message first, then what holds for every job; ids the
    output does not list (deleted meanwhile; qstat exits 1 and prints the rest) get nothing."""
    r = Sge().parse_reasons(ok("sge-8.1.9-qstat-j.xml", rc=1), ["1", "3", "9"])
    dropped = 'queue instance "all.q@vm" dropped because it is temporarily not available'
    assert r["1"] == f"{dropped}; All queues dropped because of overload or full"
    assert r["3"] == f"Job is in hold state; {dropped}; All queues dropped because of overload or full"
    assert "9" not in r
    assert Sge().build_reasons(["1", "3"])[-2:] == ["-j", "1,3"]
    for gone in (ExecResult(1, b"", b"Following jobs do not exist: \n9\n"), ExecResult(1, b"x\n9\n", b"")):
        assert Sge().parse_reasons(gone, ["9"]) == {}


def test_sge_states():
    s = Sge()
    assert [s.map_state(x) for x in ("qw", "hqw", "r", "t", "Eqw", "dr", "z")] == [
        Phase.QUEUED,
        Phase.HELD,
        Phase.RUNNING,
        Phase.RUNNING,
        Phase.HELD,
        Phase.DONE,
        Phase.DONE,
    ]


def test_torque_qstat_f_stanzas_continuations_and_separators_in_names():
    jobs = parse_qstat_f((DATA / "torque-qstat-f.txt").read_text())
    assert jobs["1021.torque.example.org"]["Job_Name"] == "a = b; c"
    assert jobs["1021.torque.example.org"]["Variable_List"].endswith("PBS_O_SHELL=/bin/bash")
    ids = list(jobs)
    text = Torque(options={"qstat_format": "text"})
    q = text.parse_list(ok("torque-qstat-f.txt"), ids)
    phases = [q[i].phase for i in ids]
    assert phases == [Phase.DONE, Phase.RUNNING, Phase.QUEUED, Phase.HELD, Phase.DONE, Phase.DONE]
    a = text.parse_accounting(ok("torque-qstat-f.txt"), ids)
    first = a["1021.torque.example.org"]
    assert (first.exit_code, first.usage.cpu_seconds, first.usage.node_list) == (3, 62.0, ["node01"])
    assert first.usage.max_rss_bytes == 10432 * 1024
    assert a["1025.torque.example.org"].outcome == JobState.TIMED_OUT
    assert a["1026.torque.example.org"].exit_code == 143  # 256 + SIGTERM
    assert "1022.torque.example.org" not in a  # still running


def test_torque_unknown_ids_do_not_hide_the_others():
    res = ExecResult(
        153, (DATA / "torque-qstat-f.txt").read_bytes(), b"qstat: Unknown Job Id Error 9.torque\n"
    )
    listed = Pbs().parse_list(res, ["1022.torque.example.org", "9.torque"])
    assert "1022.torque.example.org" in listed


X = "torque.example.org"
UNKNOWN = b"qstat: Unknown Job Id Error 9.torque.example.org\n"


def torque_x() -> ExecResult:
    """``qstat -x 2041... 2051 9`` as Torque 6.1 answers it: one document per known id, exit 153."""
    return ok("torque-6.1-qstat-x.xml", 153, UNKNOWN)


def test_torque_qstat_x_one_document_per_id_with_names_escapes_and_non_ascii():
    jobs = parse_qstat_x((DATA / "torque-6.1-qstat-x.xml").read_text())
    assert list(jobs) == [f"{n}.{X}" for n in range(2041, 2052)]
    assert jobs[f"2041.{X}"]["Job_Name"] == "align; sample=A|B, lane 1"
    assert jobs[f"2042.{X}"]["Job_Name"] == "fit \"x\" & 'y' <z>"
    assert jobs[f"2044.{X}"]["Job_Name"] == "análise_ção ✓"
    assert jobs[f"2047.{X}"]["Job_Name"] == "a = b; c"
    assert jobs[f"2044.{X}"]["resources_used.vmem"] == "2524268kb"
    assert jobs[f"2044.{X}"]["Walltime.Remaining"] == "2980"
    assert jobs[f"2041.{X}"]["Variable_List"].endswith(",PBS_O_SERVER=torque.example.org")
    hint = jobs[f"2046.{X}"]["sched_hint"]  # a value holding newlines stays one value
    assert hint.startswith("Post job file processing error") and hint.endswith("*** error from copy")


def test_torque_qstat_x_states_reasons_and_nodes():
    ids = [f"{n}.{X}" for n in range(2041, 2052)] + [f"9.{X}"]
    q = Torque().parse_list(torque_x(), ids)
    assert f"9.{X}" not in q  # purged: left the queue
    got = {i.split(".")[0]: (q[i].native, q[i].phase) for i in q}
    assert got["2041"] == ("Q", Phase.QUEUED) and got["2042"] == ("H", Phase.HELD)
    assert got["2043"] == ("W", Phase.QUEUED) and got["2044"] == ("R", Phase.RUNNING)
    assert got["2045"] == ("E", Phase.RUNNING) and got["2046"] == ("C", Phase.DONE)
    assert q[f"2041.{X}"].reason == "Not Running: Not enough of the right type of nodes available"
    assert q[f"2042.{X}"].reason == "Hold_Types=u"
    assert q[f"2043.{X}"].reason == "Execution_Time=1763874001"
    assert q[f"2044.{X}"].nodes == ["node01", "node02"] and q[f"2044.{X}"].reason is None


def test_torque_qstat_x_exit_status_and_usage():
    ids = [f"{n}.{X}" for n in range(2041, 2052)]
    a = Torque().parse_accounting(torque_x(), ids)
    assert sorted(int(i.split(".")[0]) for i in a) == list(range(2046, 2052))  # only state C
    ok0 = a[f"2046.{X}"]
    assert (ok0.exit_code, ok0.outcome, ok0.final) == (0, None, True)
    assert (ok0.usage.cpu_seconds, ok0.usage.wall_seconds) == (62.0, 65.0)
    assert ok0.usage.max_rss_bytes == 10432 * 1024 and ok0.usage.node_list == ["node01"]
    assert (a[f"2047.{X}"].exit_code, a[f"2047.{X}"].outcome) == (3, None)
    assert (a[f"2048.{X}"].exit_code, a[f"2048.{X}"].outcome) == (143, None)  # 256 + SIGTERM: qdel
    overtime = a[f"2049.{X}"]
    assert (overtime.exit_code, overtime.outcome) == (None, JobState.TIMED_OUT)
    assert "walltime" in (overtime.reason or "")
    killed = a[f"2050.{X}"]  # SIGKILL (265) with walltime used >= its limit
    assert (killed.exit_code, killed.outcome) == (137, JobState.TIMED_OUT)
    big = a[f"2051.{X}"]
    assert (big.exit_code, big.outcome) == (None, JobState.FAILED)
    assert big.reason == "Torque: the job exceeded its memory limit (exit_status -10)"
    assert big.usage.max_rss_bytes == 4194304 * 1024


def test_torque_and_pbs_flavours_pick_their_qstat_format():
    assert Torque().build_list(["1.s", "2.s"]) == ["qstat", "-x", "1.s", "2.s"]
    assert Torque().build_accounting(["1.s"], 0.0) == ["qstat", "-x", "1.s"]
    assert Torque().build_find("jw-a-1") == ["qstat", "-x"]
    assert Pbs().build_list(["1.s"]) == ["qstat", "-f", "1.s"]  # PBS Pro's -x is job history
    assert Torque(options={"qstat_format": "text"}).build_list(["1.s"])[1] == "-f"
    assert Pbs(options={"qstat_format": "xml"}).build_list(["1.s"])[1] == "-x"
    with pytest.raises(ValueError, match="qstat_format 'json'"):
        Torque(options={"qstat_format": "json"})
    opts = hpc_settings({"JOBWIRE_HPC_SCHEDULER": "torque", "JOBWIRE_HPC_QSTAT_FORMAT": "text"})
    assert opts.scheduler_options() == {"qstat_format": "text"}


def test_torque_find_by_name_through_qstat_x():
    res = ok("torque-6.1-qstat-x.xml")
    assert Torque().parse_find(res, "a = b; c") == [f"2047.{X}"]
    assert Torque().parse_find(res, "a = b") == []


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE Data [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((98 + i,) + (97 + i,) * 10)
        for i in range(9)
    )
    + b"]><Data><Job><Job_Id>1.s</Job_Id><Job_Name>&j;</Job_Name></Job></Data>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE Data [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<Data><Job><Job_Id>1.s</Job_Id><Job_Name>&x;</Job_Name></Job></Data>"
)


@pytest.mark.parametrize("payload", [BOMB, EXTERNAL, BOMB.replace(b"DOCTYPE", b"doctype")])
def test_torque_qstat_x_refuses_dtds_so_no_entity_is_expanded_or_fetched(payload):
    with pytest.raises(SchedulerError, match="DTD"):
        Torque().parse_list(ExecResult(0, payload, b""), ["1.s"])


@pytest.mark.parametrize("payload", [BOMB, EXTERNAL])
def test_sge_qstat_xml_refuses_dtds_too(payload):
    sge = payload.replace(b"<Data><Job>", b"<job_info><queue_info><job_list>").replace(
        b"</Job></Data>", b"</job_list></queue_info></job_info>"
    )
    with pytest.raises(SchedulerError, match="DTD"):
        Sge().parse_list(ExecResult(0, sge, b""), ["1"])
    with pytest.raises(SchedulerError, match="DTD"):
        Sge().parse_find(ExecResult(0, sge, b""), "x")


def test_sge_qstat_xml_that_cannot_be_read_fails_the_poll():
    with pytest.raises(SchedulerError, match="no readable XML"):
        Sge().parse_list(ExecResult(0, b"<job_info><queue_info>", b""), ["1"])


def test_torque_qstat_x_unreadable_output_fails_the_poll_instead_of_losing_jobs():
    undeclared = b"<Data><Job><Job_Id>1.s</Job_Id><Job_Name>&x;</Job_Name></Job></Data>"
    with pytest.raises(SchedulerError, match=r"cannot be read \(job 1.s\)"):
        Torque().parse_list(ExecResult(0, undeclared, b""), ["1.s"])
    whole = (DATA / "torque-6.1-qstat-x.xml").read_bytes()
    truncated = whole[: whole.rindex(b"<exit_status>")]  # qstat killed mid-answer
    with pytest.raises(SchedulerError, match="outside its XML documents"):
        Torque().parse_list(ExecResult(0, truncated, b""), [f"2051.{X}"])
    for err in (b"qstat: cannot connect to server torque (errno=111) Connection refused\n", b""):
        with pytest.raises(SchedulerError, match="exit code 1"):
            Torque().parse_list(ExecResult(1, whole, err), [f"2041.{X}"])
    mixed = UNKNOWN + b"qstat: Error (15033 - Batch protocol error) getting status of job 3.s\n"
    with pytest.raises(SchedulerError, match="Batch protocol error"):
        Torque().parse_list(ExecResult(15033 % 256, whole, mixed), [f"2041.{X}"])


def test_torque_qstat_x_odd_bytes_old_versions_and_empty_answers():
    # control characters and Latin-1 bytes from user text (Torque copies them unescaped)
    odd = b"<Data><Job><Job_Id>5.s</Job_Id><Job_Name>r\x01un \xe9t\xe9</Job_Name></Job></Data>"
    old = b"<Data><Job><Job_Id>6.s</Job_Id><job_state>Q</job_state></Job></Data>\n"  # no declaration (< 6.x)
    jobs = parse_qstat_x((odd + b"\n" + old).decode("utf-8", "replace"))
    assert jobs["5.s"]["Job_Name"] == "r\ufffdun \ufffdt\ufffd" and jobs["6.s"]["job_state"] == "Q"
    assert parse_qstat_x('<?xml version="1.0"?>\n<Data></Data>\n') == {}  # qstat -x with no jobs
    gone = ExecResult(
        153, b"", b"qstat: 7.s Job has finished, use -x or -H to obtain historical job information\n"
    )
    assert Pbs().parse_list(gone, ["7.s"]) == {}  # PBS Pro's answer for a finished job


def rest(name: str) -> ExecResult:
    return ExecResult(0, (DATA / name).read_bytes() + b"\n200", b"")


def test_slurmrestd_jobs_and_accounting_json():
    v38 = SlurmRest(options={"version": "v0.0.38"})
    q = v38.parse_list(rest("slurmrestd-22.05-v0.0.38-jobs.json"), ["2", "3", "9"])
    assert (q["2"].phase, q["2"].nodes) == (Phase.RUNNING, ["localhost"])
    assert (q["3"].phase, q["3"].reason) == (Phase.HELD, "JobHeldUser")
    a = v38.parse_accounting(rest("slurmrestd-22.05-dbv0.0.38-jobs.json"), ["1"])
    # 22.05 reports exit_code 0 for this FAILED job: the adapter leaves the code to the exit-code file
    assert (a["1"].native, a["1"].exit_code, a["1"].final) == ("FAILED", None, True)


def test_slurmrestd_errors_and_the_job_description():
    with pytest.raises(SchedulerError, match="HTTP 401"):
        SlurmRest().parse_list(ExecResult(0, b"Authentication failure\n401", b""), ["1"])
    directives = Slurm().directives(
        BatchRequest(
            job_id="j",
            attempt=1,
            spec=JobSpec(command=["true"], slurm=SlurmOptions(partition="debug", qos="normal")),
            job_dir="/s/j",
            stdout="/s/j/stdout",
            stderr="/s/j/stderr",
            argv=["true"],
            walltime=90,
        )
    )
    job = job_description(directives)
    assert job["partition"] == "debug" and job["qos"] == "normal" and job["time_limit"] == 2
    assert (job["standard_output"], job["current_working_directory"]) == ("/s/j/stdout", "/s/j")


# --- native arrays (issue 14), recorded on the test clusters here ---------------------------------


def test_squeue_lists_each_native_array_task_by_its_own_id():
    argv = Slurm().build_list(["1_5", "1_0"])
    assert argv[:4] == ["squeue", "-h", "-r", "-t"] and "1_5,1_0" in argv  # -r: pending tasks one a line
    q = Slurm().parse_list(ok("slurm-22.05-squeue-array.txt"), ["1_0", "1_6", "1_9"])
    assert set(q) == {"1_0", "1_6"} and q["1_6"].phase is Phase.QUEUED


def test_sacct_is_asked_by_jobid_for_array_tasks():
    fields = Slurm().build_accounting(["1_3", "7"], 0.0)[-1].split(",")
    assert fields[0] == "JobID" and fields[-1] == "JobName"
    assert Slurm().build_accounting(["7"], 0.0)[-1].split(",")[0] == "JobIDRaw"


def test_sge_qstat_g_d_lists_each_native_task():
    assert Sge().build_list(["4254.3"])[-2:] == ["-g", "d"]
    q = Sge().parse_list(ok("sge-8.1.9-qstat-array.xml"), ["4254.3", "4254.5", "4254.1", "4254"])
    assert set(q) == {"4254.3", "4254.5"}
    assert (q["4254.3"].phase, q["4254.5"].phase) == (Phase.RUNNING, Phase.QUEUED)


def test_sge_qacct_records_of_native_tasks_by_task_id():
    a = Sge().parse_accounting(ok("sge-8.1.9-qacct-array.txt"), ["4254.1", "4254.2", "4254.9"])
    assert set(a) == {"4254.1", "4254.2"}
    assert (a["4254.1"].exit_code, a["4254.2"].exit_code) == (0, 3)


def test_native_task_kill_hold_and_release_name_only_that_task():
    assert Slurm().build_kill(Slurm().task_id("12", 4)) == ["scancel", "12_4"]
    sge = Sge()
    assert sge.build_kill(sge.task_id("12", 4)) == ["qdel", "12", "-t", "4"]
    assert sge.build_kill("12") == ["qdel", "12"]
    assert sge.build_hold("12.4") == ["qhold", "12", "-t", "4"]
    assert sge.build_release("12.4") == ["qrls", "12", "-t", "4"]


def test_native_array_script_maps_task_ids_to_task_directories():
    req = BatchRequest(
        job_id="0190a0b0-0000-7000-8000-000000000001",
        attempt=1,
        spec=JobSpec(command=["true"]),
        job_dir="/r/jobs/a/1",
        stdout="/r/jobs/a/1/array.out",
        stderr="/r/jobs/a/1/array.err",
    )
    for adapter, first in ((Slurm(), 0), (Sge(), 1)):
        d = adapter.directives(req) + adapter.array_directives(first, first + 1, 5)
        script = adapter.build_array_script(req, d, {first: "/r/jobs/a/1", first + 1: "/r/jobs/b/1"})
        var = adapter.array_task_variable
        assert f'case "${{{var}}}" in' in script
        assert f"{first}) jw_d=/r/jobs/a/1 ;;" in script and f"{first + 1}) jw_d=/r/jobs/b/1 ;;" in script
        assert 'exec >>"$jw_d/stdout" 2>>"$jw_d/stderr"' in script
    assert "#SBATCH --array=0-1%5" in Slurm().build_array_script(
        req, Slurm().array_directives(0, 1, 5), {0: "/r/a", 1: "/r/b"}
    )
    sge = Sge().build_array_script(req, Sge().array_directives(1, 2, 5), {1: "/r/a", 2: "/r/b"})
    assert "#$ -t 1-2\n#$ -tc 5\n" in sge
    with pytest.raises(Exception, match="path"):
        Slurm().build_array_script(req, [], {0: "/r/x y\n#SBATCH --x"})


def test_torque_array_ids_and_pbs_without_native_arrays():
    t = Torque()
    assert t.array_directives(0, 19, 5) == [("-t", "0-19%5")]
    assert t.task_id("123[].srv", 4) == "123[4].srv" and t.task_job("123[4].srv") == "123[].srv"
    assert t.task_job("123.srv") is None and t.build_kill("123[4].srv") == ["qdel", "123[4].srv"]
    assert t.parse_submit(ExecResult(0, b"123[].srv\n", b"")) == "123[].srv"
    assert Pbs().array_task_variable is None  # PBS Pro's -J arrays are not rendered
    assert SlurmRest().array_task_variable is None  # one REST job description per task


def test_a_later_native_job_of_an_array_waits_for_the_earlier_one():
    assert Slurm().after_directives("12") == [("--dependency", "afterany:12")]
    assert Sge().after_directives("12") == [("-hold_jid", "12")]
    assert Torque().after_directives("12[].s") == [("-W", "depend=afteranyarray:12[].s")]
    assert Torque().after_directives("12.s") == [("-W", "depend=afterany:12.s")]


def test_torque_a_job_held_only_for_its_dependency_is_pending_not_held():
    """Torque holds a job whose ``depend`` is unmet (``H``, ``Hold_Types=s``): that is a wait, not a
    hold anyone asked for; a user hold on top of it (``us``) is a hold."""

    def answer(holds: str) -> ExecResult:
        job = (
            "<Job><Job_Id>7[0].s</Job_Id><Job_Name>jw-x-1-0</Job_Name><job_state>H</job_state>"
            f"<Hold_Types>{holds}</Hold_Types><depend>afteranyarray:6[].s@s</depend></Job>"
        )
        return ExecResult(0, f'<?xml version="1.0"?>\n<Data>{job}</Data>\n'.encode(), b"")

    [waiting] = Torque().parse_list(answer("s"), ["7[0].s"]).values()
    assert (waiting.phase, waiting.reason) == (
        Phase.QUEUED,
        "waiting for its dependency (afteranyarray:6[].s@s)",
    )
    [held] = Torque().parse_list(answer("us"), ["7[0].s"]).values()
    assert (held.phase, held.reason) == (Phase.HELD, "Hold_Types=us")


def test_lsf_array_elements_are_read_from_jobid_and_jobindex():
    """``bjobs -o "jobid jobindex ..."`` prints an element's job id and index apart: ``123[4]``."""
    out = b"123^4^RUN^-^simhost^jw-x-1[4]\n123^5^PEND^Job dependency condition not satisfied;^-^jw-x-1[5]\n"
    out += b"124^0^PEND^-^-^jw-y-1\n"
    listed = Lsf().parse_list(ExecResult(0, out, b""), ["123[4]", "123[5]", "124"])
    assert {i: (e.phase, e.reason) for i, e in listed.items()} == {
        "123[4]": (Phase.RUNNING, None),
        "123[5]": (Phase.QUEUED, "Job dependency condition not satisfied"),
        "124": (Phase.QUEUED, None),
    }
    acct = b"123^4^EXIT^3^0.5 second(s)^2 Mbytes^1 second(s)^-\n"
    [(job_id, record)] = Lsf().parse_accounting(ExecResult(0, acct, b""), ["123[4]"]).items()
    assert (job_id, record.exit_code, record.final) == ("123[4]", 3, True)
    found = b"123^jw-x-1[4]\n123^jw-x-1[5]\n125^jw-x-10\n"
    assert Lsf().parse_find(ExecResult(0, found, b""), "jw-x-1") == ["123"]


def test_lsf_native_array_directives_ids_and_hold_target():
    lsf = Lsf()
    ds = lsf.with_array([("-J", "jw-x-1"), ("-n", "1")], 1, 20, 5)
    assert ds == [("-J", '"jw-x-1[1-20]%5"'), ("-n", "1")]
    assert lsf.with_array([("-J", "jw-x-1")], 1, 3, None) == [("-J", '"jw-x-1[1-3]"')]
    assert (lsf.task_id("123", 4), lsf.task_job("123[4]"), lsf.task_job("123")) == ("123[4]", "123", None)
    assert lsf.after_directives("123") == [("-w", '"ended(123)"')]
    assert lsf.tasks_target("123", ["123[10]", "123[2]", "123[3]"]) == "123[2,3,10]"


def test_sge_a_running_task_of_a_held_array_is_running():
    """``qhold 123`` of an array whose task 1 runs: qstat shows it ``hr`` (SGE 8.1.9, seen here), and it
    runs on; the waiting ones are ``hqw``."""
    assert (Sge().map_state("hr"), Sge().map_state("hqw"), Sge().map_state("hRwq")) == (
        Phase.RUNNING,
        Phase.HELD,
        Phase.HELD,
    )
