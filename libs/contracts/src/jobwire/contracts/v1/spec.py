"""What a user asks for: ``JobSpec`` and its parts.

Sizes accept bytes or ``"4G"``; durations accept seconds or ``"15m"``/``"HH:MM:SS"``.
Both are normalised on decode, so everything past the gateway sees bytes and seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .asks import check_backend_asks
from .codec import decoding_stored
from .deps import When
from .units import parse_duration, parse_size

Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+=-]*$(?!\n)")]
LabelKey = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$(?!\n)")]
LabelValue = Annotated[str, Meta(max_length=256)]
EnvName = Annotated[str, Meta(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")]
Size = int | str
Duration = float | int | str
MAX_WALLTIME = 366 * 86400
PositiveSeconds = Annotated[float, Meta(gt=0, le=MAX_WALLTIME)]
#: the most memory a job may ask for: refused beyond it before any node is asked (1 EiB)
MAX_MEMORY = 1 << 60
MIN_CPUS = 0.01
PROGRAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*@[A-Za-z0-9][A-Za-z0-9._+-]*$(?!\n)")
#: Names of environment variables jobwire sets itself; a spec may not override them.
RESERVED_ENV_PREFIX = "JOBWIRE_"
#: A batch system's name for a partition, queue, account, QOS or parallel environment (lists with
#: ``,`` and SGE's ``*`` wildcards and ``queue@host`` included): no space, quote, ``$``, ``;``,
#: ``#`` or line break, so it can never end or extend its directive line
#: (``$(?!\n)``: Python's ``$`` also matches before a final newline, JSON Schema's does not)
BATCH_NAME = r"^[A-Za-z0-9_*][A-Za-z0-9_.,@*+-]{0,255}$(?!\n)"
#: A batch expression (SLURM constraints ``a100&(ib|eth)``, GRES ``gpu:a100:2``, Torque ``nodes``
#: ``2:ppn=8+n5``): the executor's own rule for what may stand in a directive (``hpc.values.TOKEN``)
BATCH_EXPR = r"^[A-Za-z0-9_.:,@+=/&|()!*\[\]%-]{1,256}$(?!\n)"
#: A setup fragment (``module load cuda``): shell of the owner's own, run from a file of its own
SETUP_MAX = 65536
BatchName = Annotated[str, Meta(pattern=BATCH_NAME)]
BatchExpr = Annotated[str, Meta(pattern=BATCH_EXPR)]
Setup = Annotated[str, Meta(max_length=SETUP_MAX)]


class Resources(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one attempt needs on its node."""

    #: at least a hundredth of a CPU (Docker's smallest share; a batch system rounds up to whole CPUs)
    cpus: Annotated[float, Meta(ge=MIN_CPUS, le=4096)] = 1.0
    memory: Size | None = None
    gpus: Annotated[int, Meta(ge=0, le=64)] = 0
    slots: Annotated[int, Meta(ge=1, le=4096)] = 1
    nodes: Annotated[int, Meta(ge=1, le=4096)] = 1
    walltime: Duration | None = None

    def __post_init__(self) -> None:
        if self.memory is not None:
            self.memory = parse_size(self.memory)
            if self.memory <= 0:
                raise ValueError("resources.memory must be more than 0 bytes")
            if self.memory > MAX_MEMORY:
                raise ValueError("resources.memory is more than any machine has (at most 1 EiB)")
        if self.walltime is not None:
            self.walltime = parse_duration(self.walltime)
            if not 0 < self.walltime <= MAX_WALLTIME:
                raise ValueError("resources.walltime must be more than 0 seconds and at most 366 days")

    @property
    def memory_bytes(self) -> int | None:
        return int(self.memory) if self.memory is not None else None

    @property
    def walltime_seconds(self) -> float | None:
        return float(self.walltime) if self.walltime is not None else None

    @property
    def gpus_total(self) -> int:
        """GPUs over all nodes: batch adapters ask for ``gpus`` on each of ``nodes`` (what quotas count)."""
        return self.gpus * self.nodes


#: Longest input name, and the rules for each ``/``-separated segment of one: a segment starts with a
#: letter or digit, so ``.``, ``..``, empty segments and a leading ``/`` can never be spelled.
INPUT_NAME_MAX = 255
INPUT_NAME_DEPTH = 8
_INPUT_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
INPUT_NAME_RULE = (
    "an input name is at most 255 characters: up to 8 '/'-separated segments of 1 to 128 of "
    "A-Z a-z 0-9 . _ - each, every segment starting with a letter or digit"
)


def check_input_name(name: Any) -> str:
    """``name`` when it is a safe input name (the one rule the gateway and every executor apply)."""
    if not isinstance(name, str) or not 0 < len(name) <= INPUT_NAME_MAX:
        raise ValueError(f"input name {_shown(name)} is empty or too long; {INPUT_NAME_RULE}")
    segments = name.split("/")
    if len(segments) > INPUT_NAME_DEPTH or not all(_INPUT_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"input name {_shown(name)} is not allowed; {INPUT_NAME_RULE}")
    return name


def check_input_path(path: Any) -> str:
    """A relative path with no empty, ``.`` or ``..`` segment and no control character: where an input
    is placed below the job's working directory, so it can never land outside by construction."""
    if not isinstance(path, str) or not 0 < len(path) <= 1024:
        raise ValueError(f"input path {_shown(path)} must be 1 to 1024 characters")
    if not path.isprintable():
        raise ValueError(f"input path {_shown(path)} may not contain NUL or control characters")
    if path.startswith("/"):
        raise ValueError(f"input path {_shown(path)} must be relative to the job's working directory")
    segments = path.split("/")
    if any(s in ("", ".", "..") or len(s.encode()) > 255 for s in segments):
        raise ValueError(f"input path {_shown(path)} may not contain empty, '.' or '..' segments")
    return path


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class InputRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A named stored input (``PUT /v1/inputs/{name}``) placed read-only at ``path`` below the job's
    working directory (default: the name's last segment)."""

    name: Annotated[str, Meta(min_length=1, max_length=INPUT_NAME_MAX)]
    path: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None

    def __post_init__(self) -> None:
        check_input_name(self.name)
        if self.path is not None:
            check_input_path(self.path)

    @property
    def target(self) -> str:
        """Where the input goes, relative to the working directory."""
        return self.path if self.path is not None else self.name.rsplit("/", 1)[-1]


class CodeFile(msgspec.Struct, kw_only=True):
    """An uploaded script: the job runs ``interpreter filename *args`` in its directory."""

    #: a plain file name that starts with a letter, digit or ``_``: never ``.``, ``..`` or an option
    filename: Annotated[
        str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$(?!\n)")
    ]
    content: str
    interpreter: list[str] | None = None


#: Where jobwire mounts the job's own directory in a container; user mounts may not land there.
DOCKER_JOB_MOUNT = "/jobwire"
PULL_POLICIES = ("never", "if_not_present", "always")
#: Host paths never bind-mounted, whatever the executor allows: the engine's socket and state, and
#: the kernel's interfaces. Executors also resolve symlinks against their own allowed roots.
FORBIDDEN_BIND_SOURCES = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/lib/docker",
    "/run/containerd",
    "/var/run",
    "/run",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/etc",
)
#: directories no job works in, besides the ones never bind-mounted
SYSTEM_DIRS = (
    *("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/root", "/var/lib", "/var/log"),
)
_PORT = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$(?!\n)")
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$(?!\n)")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?$(?!\n)")
_GPU_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:.-]{0,127}$(?!\n)")


def _clean_abs(path: Any, what: str) -> str:
    """An absolute path without ``.``/``..`` components; anything else is refused, not normalised."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{what} must be an absolute path, not {path!r}")
    if "\x00" in path or len(path) > 4096:
        raise ValueError(f"{what} {path!r} is not a usable path")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{what} {path!r} may not contain '.' or '..' components")
    return "/" + "/".join(parts)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


WORKDIR_RULE = (
    "a relative workdir is a path below the job's own directory (no '.', '..' or empty segments); "
    "an absolute one must lie under a root the node allows (never '/' or a system directory)"
)


def check_workdir(path: Any) -> str:
    """The shape every executor accepts for ``workdir``: relative and inside the attempt's directory, or
    absolute and clean, outside the system directories. Each executor then holds an absolute workdir
    against its own allowed roots (``JOBWIRE_*_WORKDIR_ROOTS``)."""
    if not isinstance(path, str) or not 0 < len(path) <= 4096 or not path.isprintable():
        raise ValueError(
            f"workdir {_shown(path)} is empty, too long or has control characters; {WORKDIR_RULE}"
        )
    if not path.startswith("/"):
        if any(seg in ("", ".", "..") for seg in path.split("/")):
            raise ValueError(f"workdir {_shown(path)} may not leave the job's directory; {WORKDIR_RULE}")
        return path
    clean = _clean_abs(path, "workdir")
    if clean == "/" or any(_under(clean, bad) for bad in (*FORBIDDEN_BIND_SOURCES, *SYSTEM_DIRS)):
        raise ValueError(f"workdir {_shown(path)} is a system directory; {WORKDIR_RULE}")
    return clean


def check_bind_source(path: Any, what: str = "docker.mounts source") -> str:
    """The normalised host path of a bind mount, or ValueError when no executor would ever allow it."""
    clean = _clean_abs(path, what)
    if clean == "/":
        raise ValueError(f"{what} '/' would expose the whole host")
    for bad in FORBIDDEN_BIND_SOURCES:
        if _under(clean, bad):
            raise ValueError(f"{what} {path!r} lies in {bad}, which is never mounted into jobs")
    return clean


def port_key(port: Any) -> str:
    """The ``"8888/tcp"`` key of a port entry (``8888``, ``"8888/udp"``, ``{"container": 8888}``)."""
    if isinstance(port, dict):
        unknown = set(port) - {"container", "protocol", "host", "host_ip"}
        if unknown:
            raise ValueError(f"docker.ports entry has unknown keys {sorted(unknown)}")
        proto = port.get("protocol", "tcp")
        host = port.get("host")
        if host is not None and (type(host) is not int or not 0 <= host <= 65535):
            raise ValueError(f"docker.ports host port {host!r} must be 0-65535")
        if not isinstance(port.get("host_ip", ""), str):
            raise ValueError("docker.ports host_ip must be a string")
        return port_key(f"{port.get('container')}/{proto}")
    if isinstance(port, int) and not isinstance(port, bool):
        port = str(port)
    m = _PORT.match(port) if isinstance(port, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 65535:
        raise ValueError(f"docker.ports entry {port!r} must be a port 1-65535, optionally /tcp or /udp")
    return f"{int(m.group(1))}/{m.group(2) or 'tcp'}"


class DockerOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Container options. ``mounts`` entries are ``{"source", "target", "read_only"}`` binds of host
    paths (the executor allows only its configured roots); ``ports`` are container ports to publish
    (``8888``, ``"8888/udp"`` or ``{"container", "host", "protocol", "host_ip"}``)."""

    mounts: Annotated[list[dict[str, Any]], Meta(max_length=64)] = []
    ports: Annotated[list[Any], Meta(max_length=256)] = []
    shm_size: Size | None = None
    network: Annotated[str, Meta(pattern=_NETWORK.pattern)] | None = None
    user: Annotated[str, Meta(pattern=_USER.pattern)] | None = None
    pull_policy: str = "if_not_present"
    gpu_ids: Annotated[list[Annotated[str, Meta(pattern=_GPU_ID.pattern)]], Meta(max_length=64)] = []

    def __post_init__(self) -> None:
        targets: set[str] = set()
        for m in self.mounts:
            unknown = set(m) - {"source", "target", "read_only", "type"}
            if unknown:
                raise ValueError(f"docker.mounts entry has unknown keys {sorted(unknown)}")
            if m.get("type", "bind") != "bind":
                raise ValueError("docker.mounts entries are binds (type 'bind')")
            if not isinstance(m.get("read_only", False), bool):
                raise ValueError("docker.mounts read_only must be true or false")
            check_bind_source(m.get("source"))
            target = _clean_abs(m.get("target"), "docker.mounts target")
            if target == "/" or _under(target, DOCKER_JOB_MOUNT):
                raise ValueError(f"docker.mounts target {target!r} is reserved")
            if target in targets:
                raise ValueError(f"docker.mounts target {target!r} is given twice")
            targets.add(target)
        keys = [port_key(p) for p in self.ports]
        if len(set(keys)) != len(keys):
            raise ValueError("docker.ports names a container port twice")
        if self.shm_size is not None:
            self.shm_size = parse_size(self.shm_size)
            if self.shm_size <= 0:
                raise ValueError("docker.shm_size must be more than 0 bytes")
        if self.network is not None and not _NETWORK.match(self.network):
            raise ValueError(f"docker.network {self.network!r} is not a network name")
        if self.network in ("host", "container"):
            raise ValueError(f"docker.network {self.network!r} would share a namespace outside the job")
        if self.user is not None and not _USER.match(self.user):
            raise ValueError(f"docker.user {self.user!r} must look like NAME, UID or UID:GID")
        if self.pull_policy not in PULL_POLICIES:
            raise ValueError(f"docker.pull_policy must be one of {', '.join(PULL_POLICIES)}")
        for gpu in self.gpu_ids:
            if not _GPU_ID.match(gpu):
                raise ValueError(f"docker.gpu_ids entry {gpu!r} is not a device id")


# The batch options' patterns and ranges are part of their types, so they are in the JSON Schema a
# node publishes: the gateway refuses a value no batch system could take (422 naming the field) for
# ``backend_options`` as for these fields, and the executor checks the same rule again.


class SlurmOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    partition: BatchName | None = None
    account: BatchName | None = None
    qos: BatchName | None = None
    constraints: BatchExpr | None = None
    gres: BatchExpr | None = None
    setup: Setup | None = None


class SgeOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    queue: BatchName | None = None
    parallel_environment: BatchName | None = None
    setup: Setup | None = None


class TorqueOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    queue: BatchName | None = None
    nodes: BatchExpr | None = None
    ppn: Annotated[int, Meta(ge=1, le=4096)] | None = None
    setup: Setup | None = None


class SshOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    gpu_ids: Annotated[list[Annotated[int, Meta(ge=0, le=1023)]], Meta(max_length=64)] = []


#: the most tasks one array may have (stored as one row until its tasks are scheduled)
MAX_ARRAY_TASKS = 1_000_000
#: what a retry may be asked on: the ends of an attempt that another attempt can mend
RETRY_ON = ("failed", "lost", "timed_out")
#: the longest wait between two attempts, however often the backoff doubled (one day)
MAX_BACKOFF = 86400.0


class ArraySpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``count`` tasks of one spec (Slurm's ``--array``), indices ``start`` .. ``start + count - 1``, at
    most ``parallelism`` of them queued or running at once (None: as many as the nodes take)."""

    count: Annotated[int, Meta(ge=1, le=MAX_ARRAY_TASKS)]
    parallelism: Annotated[int, Meta(ge=1, le=MAX_ARRAY_TASKS)] | None = None
    start: Annotated[int, Meta(ge=0, le=1_000_000_000)] = 0


class RetrySpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Run the job again when an attempt ends in one of ``on``: up to ``attempts`` attempts in all,
    waiting ``backoff`` seconds before the second, twice that before the third, and so on.

    ``exit_codes`` narrows ``failed`` to those exit codes (empty: any failure)."""

    attempts: Annotated[int, Meta(ge=1, le=100)] = 3
    on: list[str] = msgspec.field(default_factory=lambda: list(RETRY_ON))
    exit_codes: Annotated[list[int], Meta(max_length=256)] = []
    backoff: Annotated[float, Meta(ge=0, le=MAX_BACKOFF)] = 0.0

    def __post_init__(self) -> None:
        unknown = [o for o in self.on if o not in RETRY_ON]
        if unknown:
            raise ValueError(f"retry.on may name only {', '.join(RETRY_ON)}, not {', '.join(unknown)}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) ended."""
        if self.backoff <= 0:
            return 0.0
        return min(MAX_BACKOFF, self.backoff * 2.0 ** max(0, min(attempt - 1, 30)))

    def applies(self, outcome: str, exit_code: int | None) -> bool:
        """Whether an attempt that ended ``outcome`` (with ``exit_code``) is retried."""
        if outcome not in self.on:
            return False
        return outcome != "failed" or not self.exit_codes or exit_code in self.exit_codes


#: the most jobs one job may wait for
MAX_AFTER = 1000


class Dependency(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Run only once job ``job`` ended as ``when`` says (Slurm's afterok / afternotok / afterany); a
    dependency that can no longer be met cancels the job at once, with the reason. ``job`` may be an
    array's id: the array ends ``succeeded`` when every task did, else ``failed`` (or ``cancelled``
    when it was cancelled), once all its tasks ended. In a workflow
    (``POST /v1/workflows``) ``job`` may also be the name of another job of the same workflow."""

    job: Annotated[str, Meta(min_length=1, max_length=128)]
    when: When = When.SUCCEEDED


#: The options types that also have a ``JobSpec`` field (kept for this API version), by type name (the
#: name a node's published schema refers to): their rules against ``resources`` hold either way.
LEGACY_OPTIONS: dict[str, tuple[str, type[msgspec.Struct]]] = {
    "SlurmOptions": ("slurm", SlurmOptions),
    "SgeOptions": ("sge", SgeOptions),
    "TorqueOptions": ("torque", TorqueOptions),
    "DockerOptions": ("docker", DockerOptions),
    "SshOptions": ("ssh", SshOptions),
}


class JobSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A job as submitted. Exactly one of ``command``, ``script``, ``program`` or ``code``."""

    name: Name | None = None
    command: Annotated[list[str], Meta(min_length=1, max_length=4096)] | None = None
    script: Annotated[str, Meta(min_length=1, max_length=1_000_000)] | None = None
    program: str | None = None
    code: CodeFile | None = None
    args: Annotated[list[str], Meta(max_length=4096)] = []
    image: Annotated[str, Meta(max_length=512)] | None = None
    workdir: Annotated[str, Meta(max_length=4096)] | None = None
    env: dict[EnvName, Annotated[str, Meta(max_length=131072)]] = {}
    inputs: list[InputRef] = []
    resources: Resources = msgspec.field(default_factory=Resources)
    expected_runtime: PositiveSeconds | None = None
    backend: Annotated[str, Meta(max_length=64)] | None = None
    cluster: Annotated[str, Meta(max_length=128)] | None = None
    pool: Annotated[str, Meta(max_length=128)] | None = None
    node: Annotated[str, Meta(max_length=128)] | None = None
    labels: dict[LabelKey, LabelValue] = {}
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 1
    priority: Annotated[int, Meta(ge=-1000, le=1000)] = 0
    docker: DockerOptions | None = None
    slurm: SlurmOptions | None = None
    sge: SgeOptions | None = None
    torque: TorqueOptions | None = None
    ssh: SshOptions | None = None
    #: the chosen backend's own options, checked against the schema its nodes publish (so a backend
    #: brings its options without a field here); the fields above keep working for this version
    backend_options: dict[str, Any] = {}
    #: many tasks of this spec (each a job with ``array_id`` and ``array_index``)
    array: ArraySpec | None = None
    #: attempts again on failure, loss or timeout, with backoff (sets ``max_attempts``)
    retry: RetrySpec | None = None
    #: jobs that must end first (``contracts.v1.deps`` says when each is met)
    after: Annotated[list[Dependency], Meta(max_length=MAX_AFTER)] = []

    def __post_init__(self) -> None:
        if decoding_stored():  # checked when it was accepted (and ``max_attempts`` set then)
            return
        if self.retry is not None:
            if self.max_attempts not in (1, self.retry.attempts):
                raise ValueError("give either max_attempts or retry.attempts, not two different counts")
            self.max_attempts = self.retry.attempts
        if self.array is not None and self.after:
            raise ValueError("after: an array cannot wait for other jobs yet (its tasks would start at once)")
        named = [d.job for d in self.after]
        if len(set(named)) != len(named):
            twice = sorted({j for j in named if named.count(j) > 1})
            raise ValueError(f"after names job {', '.join(twice)} more than once")
        given = [k for k in ("command", "script", "program", "code") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'command', 'script', 'program' or 'code'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.program is not None and not PROGRAM_ID.match(self.program):
            raise ValueError(f"program {self.program!r} must look like NAME@VERSION")
        if self.command is not None and any("\x00" in a for a in self.command):
            raise ValueError("command arguments cannot contain NUL bytes")
        if any("\x00" in a for a in self.args):
            raise ValueError("args cannot contain NUL bytes")
        if self.workdir is not None:
            check_workdir(self.workdir)
        check_backend_asks(self)
        for key, value in self.env.items():
            if key.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f"env {key!r}: names starting with {RESERVED_ENV_PREFIX} are set by jobwire")
            if "\x00" in value:
                raise ValueError(f"env {key!r} cannot contain NUL bytes")
        targets: set[str] = set()
        for ref in self.inputs:
            if ref.target in targets:
                raise ValueError(f"two inputs collide at {ref.target!r}")
            targets.add(ref.target)
        for target in targets:
            parts = target.split("/")
            for n in range(1, len(parts)):
                if "/".join(parts[:n]) in targets:
                    raise ValueError(f"inputs collide at {target!r}: a file cannot also be a directory")

    def timeout_seconds(self) -> float | None:
        """The walltime, else twice the expected runtime, else no limit."""
        wall = self.resources.walltime_seconds
        if wall is not None:
            return wall
        if self.expected_runtime is not None:
            return 2.0 * self.expected_runtime
        return None
