import pytest

from jobwire.contracts import v1
from jobwire.scheduler.cluster import Cluster, NodeState, QueuedJob, RunningJob
from jobwire.scheduler.placement import LeastQueuedTime, eligible, load_policy, place

pytestmark = pytest.mark.unit
NOW = 1000.0


def node(name, slots=1, cpus=4.0, gpus=0, memory=None, backend="local", labels=None, pool=None):
    return NodeState(
        name=name,
        backend=backend,
        capacity=v1.NodeCapacity(slots=slots, cpus=cpus, gpus=gpus, memory=memory),
        labels=labels or {},
        pool=pool,
    )


def spec(**fields):
    fields.setdefault("command", ["true"])
    return v1.JobSpec(**fields)


def job(jid, runtime=10.0, priority=0, **fields):
    return QueuedJob(jid, priority, runtime, spec(expected_runtime=runtime, **fields).resources, "u")


def test_least_queued_time_picks_the_node_that_drains_first():
    a, b = node("a"), node("b", slots=2)
    a.enqueue(job("1", 100))
    b.enqueue(job("2", 100))
    b.enqueue(job("3", 60))  # b: 160 s over 2 slots = 80 s < a's 100 s
    assert place(LeastQueuedTime(), spec(), [a, b], NOW) is b


def test_queued_time_follows_the_queue_as_jobs_come_and_go():
    """The queue's work is kept as a running sum (placement reads it per node per job): it must stay
    what summing the queue gives, through enqueues, dequeues, a job queued again and an emptied queue."""
    import random

    rng = random.Random(11)
    a = node("a", slots=3)
    for step in range(2000):
        jid = str(rng.randrange(200))
        if rng.random() < 0.6:
            a.enqueue(job(jid, runtime=rng.choice([0.1, 1.0, 7.3, 600.0])))
        else:
            a.dequeue(jid)
        expected = sum(j.expected_runtime for j in a.queued.values()) / 3
        assert a.queued_time(NOW) == pytest.approx(expected, abs=1e-6), step
    for jid in list(a.queued):
        a.dequeue(jid)
    assert a.queued_time(NOW) == 0.0


def test_remaining_time_of_running_jobs_counts():
    a, b = node("a"), node("b")
    a.running["r"] = RunningJob("r", 1, v1.Resources(), expected_runtime=100, since=NOW - 90)  # 10 s left
    b.enqueue(job("q", 30))
    assert a.queued_time(NOW) == pytest.approx(10)
    assert place(LeastQueuedTime(), spec(), [a, b], NOW) is a


def test_overrun_jobs_count_as_zero_left_not_negative():
    a = node("a")
    a.running["r"] = RunningJob("r", 1, v1.Resources(), expected_runtime=10, since=NOW - 500)
    assert a.queued_time(NOW) == 0


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"resources": v1.Resources(gpus=1)}, False),
        ({"resources": v1.Resources(cpus=8)}, False),
        ({"resources": v1.Resources(memory="2G")}, False),
        ({"resources": v1.Resources(memory="512M", cpus=4)}, True),
        ({"backend": "docker"}, False),
        ({"backend": "local"}, True),
        ({"node": "other"}, False),
        ({"pool": "gpu"}, False),
    ],
)
def test_eligibility(fields, ok):
    n = node("a", cpus=4, memory=1024**3)
    assert eligible(n, spec(**fields)) is ok


def test_down_nodes_and_nodes_too_small_are_never_chosen():
    small, down, gpu = node("small"), node("down", gpus=1), node("gpu", gpus=2)
    down.up = False
    for i in range(5):
        gpu.enqueue(job(f"g{i}", 1000))
    chosen = place(LeastQueuedTime(), spec(resources=v1.Resources(gpus=1)), [small, down, gpu], NOW)
    assert chosen is gpu
    assert place(LeastQueuedTime(), spec(resources=v1.Resources(gpus=4)), [small, down, gpu], NOW) is None


def test_slots_and_free_resources_gate_starting():
    n = node("a", slots=2, cpus=4, gpus=1)
    assert n.fits_now(v1.Resources(cpus=3, gpus=1))
    n.running["r1"] = RunningJob("r1", 1, v1.Resources(cpus=3, gpus=1), 10, NOW)
    assert not n.fits_now(v1.Resources(cpus=2))  # 3 + 2 > 4 CPUs
    assert not n.fits_now(v1.Resources(gpus=1))  # the only GPU is taken
    assert n.fits_now(v1.Resources(cpus=1))
    n.running["r2"] = RunningJob("r2", 1, v1.Resources(cpus=0.5), 10, NOW)
    assert not n.fits_now(v1.Resources(cpus=0.1))  # both slots used


def test_queue_positions_follow_priority_then_submission_order():
    c = Cluster()
    c.nodes["a"] = node("a")
    assert c.enqueue("a", job("01", priority=0)) == 0
    assert c.enqueue("a", job("02", priority=0)) == 1
    assert c.enqueue("a", job("03", priority=5)) == 0  # jumps ahead
    assert [c.position(j) for j in ("01", "02", "03")] == [1, 2, 0]
    c.remove_queued("03")
    assert [c.position(j) for j in ("01", "02")] == [0, 1]
    assert c.nodes["a"].head().id == "01"


def test_unknown_policy_is_a_clear_error():
    assert isinstance(load_policy("least-queued-time"), LeastQueuedTime)
    with pytest.raises(ValueError, match="unknown placement policy"):
        load_policy("nope")


def test_fair_share_load_counts_gpus_and_shares_and_a_gang_rank_once():
    """A slot goes to the lowest load per share: a GPU weighs 8 CPUs, share 2 halves the load, and a
    gang's rank (one running entry per node) counts its own node's resources, not the gang's."""
    from jobwire.scheduler.fairshare import GPU_WEIGHT, FairShare, units

    fair = FairShare(half_life=60.0, shares={"alice": 2.0})
    gang_rank = v1.Resources(cpus=2, gpus=1, nodes=3)
    assert units(gang_rank) == 2 + GPU_WEIGHT
    fair.started("alice", v1.Resources(cpus=4))
    fair.started("bob", v1.Resources(cpus=1))
    assert fair.load("alice") == pytest.approx(2.0) and fair.load("bob") == pytest.approx(1.0)
    fair.advance(0.0)
    fair.advance(60.0)  # one half-life of running 4 and 1 units
    assert fair.usage["alice"] == pytest.approx(240.0) and fair.usage["bob"] == pytest.approx(60.0)
    fair.ended("bob", v1.Resources(cpus=1))
    fair.advance(120.0)
    assert fair.usage["bob"] == pytest.approx(30.0)  # halved, nothing added


def test_past_runs_add_the_usage_they_would_have_added_while_running():
    from jobwire.scheduler.fairshare import FairShare

    live, past = FairShare(half_life=60.0), FairShare(half_life=60.0)
    live.started("alice", v1.Resources(cpus=2))
    for t in range(0, 601):  # a 600 s run seen second by second, then 120 s of quiet
        live.advance(float(t))
    live.ended("alice", v1.Resources(cpus=2))
    live.advance(720.0)
    past.add_past("alice", 2.0, age_end=120.0, age_start=720.0)
    assert past.usage["alice"] == pytest.approx(live.usage["alice"], rel=0.02)
