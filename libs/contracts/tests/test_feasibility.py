"""The feasibility rules the gateway (422 at submit) and the scheduler (placement, reasons) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility as fz

pytestmark = pytest.mark.unit


@dataclass
class Node:
    name: str
    backend: str = "local"
    capacity: v1.NodeCapacity = field(default_factory=v1.NodeCapacity)
    labels: dict[str, str] = field(default_factory=dict)
    pool: str | None = None


def node(name: str, backend: str = "local", *, slots=2, cpus=4.0, gpus=0, memory=None, **kw) -> Node:  # type: ignore[no-untyped-def]
    cap = v1.NodeCapacity(slots=slots, cpus=cpus, gpus=gpus, memory=memory)
    return Node(name, backend, cap, **kw)


def spec(**kw) -> v1.JobSpec:  # type: ignore[no-untyped-def]
    kw.setdefault("command", ["true"])
    return v1.convert_strict(kw, v1.JobSpec)


DOCKER = [node("dock-a", "docker", cpus=8, memory=8 << 30), node("dock-b", "docker", cpus=2, memory=1 << 30)]
MIXED = [*DOCKER, node("loc-1"), node("gpu-1", "ssh", gpus=2, cpus=16, labels={"node.gpu": "a100"})]


@pytest.mark.parametrize(
    ("nodes", "job", "path", "detail"),
    [
        (DOCKER, {"resources": {"gpus": 1}}, "$.resources.gpus", "needs 1 GPU; no node has GPUs"),
        (
            MIXED,
            {"backend": "docker", "resources": {"gpus": 1}},
            "$.resources.gpus",
            "needs 1 GPU; no node of backend docker has GPUs",
        ),
        (
            MIXED,
            {"resources": {"gpus": 4}},
            "$.resources.gpus",
            "needs 4 GPUs; the most any node has is 2 (gpu-1)",
        ),
        (
            MIXED,
            {"node": "dock-zz"},
            "$.node",
            "no node named 'dock-zz'; known: dock-a, dock-b, gpu-1, loc-1",
        ),
        (MIXED, {"backend": "slurm"}, "$.backend", "backends offered: docker, local, ssh"),
        (
            MIXED,
            {"node": "loc-1", "backend": "docker"},
            "$.backend",
            "no node named 'loc-1' is of backend 'docker'; backends offered: local",
        ),
        (MIXED, {"pool": "big"}, "$.pool", "no node is in pool 'big'; none is in a pool"),
        (MIXED, {"labels": {"node.gpu": "h100"}}, "$.labels['node.gpu']", "values offered: a100"),
        (
            MIXED,
            {"resources": {"cpus": 32}},
            "$.resources.cpus",
            "needs 32 CPUs; the most any node has is 16 (gpu-1)",
        ),
        (
            DOCKER,
            {"resources": {"memory": "16G"}},
            "$.resources.memory",
            "needs 16G of memory; the most any node has is 8G (dock-a)",
        ),
        (
            [node("loc-1")],
            {"image": "python:3.11"},
            "$.image",
            "names an image (python:3.11) but no node runs images (nodes of backend docker do)",
        ),
        (
            [node("l1"), node("l2"), node("d1", "docker"), node("s1", "slurm")],
            {"resources": {"nodes": 3}},
            "$.resources.nodes",
            "needs 3 nodes of one backend that runs gangs (docker, local, ssh), each fitting one rank; "
            "the most is 2 of backend local (or backend: hpc on SLURM, one --nodes 3 batch job)",
        ),
        (
            [node("l1"), node("l2", cpus=1.0)],
            {"resources": {"nodes": 2, "cpus": 2}},
            "$.resources.nodes",
            "the most is 1 of backend local",
        ),
    ],
)
def test_refusals_name_the_resource_and_the_largest_offer(nodes, job, path, detail):  # type: ignore[no-untyped-def]
    why = fz.refusal(nodes, spec(**job))
    assert why is not None
    assert why.path == path
    assert detail in why.detail


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"resources": {"gpus": 2}, "labels": {"node.gpu": "a100", "team": "x"}},
        {"image": "python:3.11", "resources": {"memory": "4G"}},
        {"node": "dock-b", "resources": {"cpus": 2, "memory": "1G"}},
        {"backend": "local", "resources": {"cpus": 4}},
    ],
)
def test_jobs_some_node_fits_are_accepted(job):  # type: ignore[no-untyped-def]
    assert fz.refusal(MIXED, spec(**job)) is None


def test_no_registered_node_means_nothing_to_judge_by():
    assert fz.refusal([], spec(resources={"gpus": 8})) is None


def test_a_node_with_unknown_memory_could_fit_any_memory():
    nodes = [node("a", memory=None), node("b", memory=1 << 30)]
    assert fz.refusal(nodes, spec(resources={"memory": "64G"})) is None


def test_capacity_is_judged_among_the_nodes_the_hints_leave():
    """CPUs are compared among GPU nodes only: a big CPU-only node does not make a GPU job fit."""
    nodes = [node("cpu", cpus=64), node("gpu", gpus=1, cpus=4)]
    why = fz.refusal(nodes, spec(resources={"gpus": 1, "cpus": 8}))
    assert why is not None and why.detail == "needs 8 CPUs; the most any node with 1 GPU has is 4 (gpu)"


def test_absurd_sizes_are_refused_when_decoded():
    for body in (
        b'{"command":["x"],"resources":{"memory":1e35}}',
        b'{"command":["x"],"resources":{"memory":100000000000000000000000000000000000}}',
        b'{"command":["x"],"resources":{"memory":"99999999999999999999T"}}',
        b'{"command":["x"],"resources":{"walltime":1e35}}',
    ):
        with pytest.raises(msgspec.ValidationError):
            v1.decode_strict(body, v1.JobSpec)


def test_waiting_reasons_name_down_nodes_and_since_when():
    at = datetime(2026, 12, 5, 21, 14, 2, tzinfo=UTC)
    nodes = [node("dock-a", "docker"), node("dock-b", "docker")]
    pinned = spec(node="dock-b")
    assert fz.waiting_reason(nodes, pinned, {"dock-b": at}) == "node dock-b is down since 21:14:02 UTC"
    both = fz.waiting_reason(nodes, spec(), {"dock-a": at, "dock-b": None})
    assert both == "all 2 nodes that fit are down: dock-a since 21:14:02 UTC, dock-b"
    gpu = fz.waiting_reason(nodes, spec(resources={"gpus": 1}), {})
    assert gpu == "no registered node can run it: needs 1 GPU; no node has GPUs"
    assert fz.waiting_reason([], spec(), {}) == "no node is registered yet"


def test_busy_reason_counts_the_nodes_that_fit():
    assert fz.busy_reason(DOCKER, spec()) == "all 2 docker nodes that fit are busy"
    assert fz.busy_reason(DOCKER[:1], spec()) == "node dock-a is busy"
    assert fz.busy_reason(MIXED, spec()) == "all 4 nodes that fit are busy"


def test_usable_slots_counts_what_runs_out_first():
    cap = v1.NodeCapacity(slots=6, cpus=2, gpus=4, memory=8 << 30)
    assert fz.usable_slots(cap, v1.Resources()) == 2  # two 1-CPU jobs use both CPUs
    assert fz.usable_slots(cap, v1.Resources(cpus=0.5, gpus=1)) == 4  # then the GPUs run out
    assert fz.usable_slots(cap, v1.Resources(cpus=0.25, memory="4G")) == 2
    assert fz.usable_slots(v1.NodeCapacity(slots=1, cpus=1), v1.Resources(cpus=4)) == 1


def test_multi_slot_jobs_need_the_option_a_node_has_no_default_for():
    """SGE without a default parallel environment publishes single_slot_unless; a job of more than
    one slot (slots, or CPUs rounded up) fits it only when it names sge.parallel_environment."""
    sge = Node(
        "hpc-sge", "hpc", v1.NodeCapacity(slots=32, cpus=64, single_slot_unless="sge.parallel_environment")
    )
    with_pe = Node("hpc-sge-pe", "hpc", v1.NodeCapacity(slots=32, cpus=64))
    four = spec(node="hpc-sge", resources={"slots": 4})
    why = fz.refusal([sge, with_pe], four)
    assert why is not None and why.path == "$.sge.parallel_environment"
    assert why.detail.startswith("needs 4 slots; no node named 'hpc-sge' runs a job on more than one slot")
    assert fz.refusal([sge], spec(resources={"cpus": 2.5})) is not None  # 3 slots
    assert fz.refusal([sge, with_pe], spec(resources={"slots": 4})) is None  # hpc-sge-pe takes it
    assert fz.refusal([sge], spec(resources={"slots": 4}, sge={"parallel_environment": "smp"})) is None
    assert fz.refusal([sge], spec()) is None  # one slot needs no parallel environment
    assert not fz.eligible(sge, four) and fz.eligible(with_pe, spec(resources={"slots": 4}))


def test_a_slurm_gang_is_one_batch_job_on_one_executor_node():
    slurm = node("hpc-slurm", "hpc", cpus=16.0)
    slurm.capacity = v1.NodeCapacity(slots=2, cpus=16.0, gang_launch=True)  # executor-hpc on SLURM
    sge = node("hpc-sge", "hpc", cpus=16.0)  # a batch system that does not launch gangs itself
    gang = spec(backend="hpc", resources={"nodes": 2, "cpus": 4})
    assert fz.batch_gang(gang)
    assert fz.refusal([slurm, sge, node("l1")], gang) is None  # the batch system places its 2 nodes
    assert fz.eligible(slurm, gang) and not fz.eligible(sge, gang)
    assert fz.eligible(sge, spec(backend="hpc"))  # one node's job still runs there
    why = fz.refusal([sge, node("l1")], gang)
    assert why is not None and why.path == "$.resources.nodes", why
    assert "no node of backend hpc launches a gang's ranks itself" in why.detail
    why = fz.refusal([slurm, node("l1")], spec(resources={"nodes": 2}))  # no backend: 2 jobwire nodes
    assert why is not None and "the most is 1 of backend local" in why.detail
    assert "(or backend: hpc on SLURM, one --nodes 2 batch job)" in why.detail


def test_docker_and_ssh_nodes_take_gangs_but_never_mixed_with_another_backend():
    assert fz.refusal([*DOCKER, node("dock-c", "docker")], spec(resources={"nodes": 3})) is None
    ssh = [node(f"gpu-{i}", "ssh", gpus=1) for i in range(2)]
    assert fz.refusal(ssh, spec(resources={"nodes": 2, "gpus": 1})) is None
    why = fz.refusal([*DOCKER, *ssh], spec(resources={"nodes": 3}))  # 2 + 2 is not 3 of one backend
    assert why is not None and why.path == "$.resources.nodes"
    assert "runs gangs (docker, local, ssh)" in why.detail and "the most is 2 of backend" in why.detail


def served(name: str, owner: str | None, **kw) -> Node:  # type: ignore[no-untyped-def]
    """A node whose executor runs jobs as its own account, for ``owner`` only (None: every owner's)."""
    n = node(name, **kw)
    n.capacity = msgspec.structs.replace(n.capacity, owner=owner)
    return n


def test_a_node_serving_one_owner_is_no_candidate_for_anothers_job():
    alices, shared = served("alices", "alice"), served("shared", None)
    job = spec()
    assert fz.eligible(alices, job, "alice") and fz.eligible(shared, job, "bob")
    assert not fz.eligible(alices, job, "bob")
    assert fz.eligible(alices, job)  # owner not known (a node's own view of a spec): not judged here
    assert fz.refusal([alices, shared], job, "bob") is None  # the shared node takes bob's job


def test_when_only_other_owners_nodes_fit_the_refusal_names_them_and_the_setting():
    nodes = [served("alices", "alice"), served("carols", "carol", cpus=64), node("small", cpus=1)]
    why = fz.refusal(nodes, spec(resources={"cpus": 8}), "bob")
    assert why is not None and why.path == "$.resources.cpus"  # small is bob's only node, too small
    only_theirs = [served("alices", "alice"), served("carols", "carol")]
    why = fz.refusal(only_theirs, spec(), "bob")
    assert why is not None and why.path == "$"
    assert why.detail.startswith("no node runs jobs of owner 'bob': alices (alice), carols (carol) run only")
    assert "JOBWIRE_EXECUTOR_RUN_AS=owner" in why.detail
    pinned = fz.refusal(only_theirs, spec(node="alices"), "bob")
    assert pinned is not None and pinned.detail.startswith("no node named 'alices' runs jobs of owner 'bob'")
    assert fz.refusal(only_theirs, spec(), "alice") is None
    # a gang's ranks each need a node that serves its owner
    gang = spec(resources={"nodes": 2})
    assert fz.refusal([served("a1", "alice"), served("a2", "alice")], gang, "alice") is None
    mixed = fz.refusal([served("a1", "alice"), served("s1", None)], gang, "bob")
    assert mixed is not None and mixed.path == "$.resources.nodes"
    why_waits = fz.waiting_reason(only_theirs, spec(), {}, "bob")
    assert why_waits.startswith("no registered node can run it: no node runs jobs of owner 'bob'")
