"""The gang rendezvous program of issue 14, written once for the local, Docker and SSH gang tests.

Rank 0 listens on ``MASTER_ADDR:MASTER_PORT`` (on every address when ``BIND`` says so: a container
whose MASTER_ADDR is its host's, behind a published port), the others connect and send their rank,
and rank 0 answers each with every rank it met. Each rank writes its pid, what it saw and its
``JOBWIRE_*``/torch variables to ``OUT`` (argv 1; ``-``: its own ``JOBWIRE_OUTPUT_DIR``), prints one
line, sleeps argv 2 seconds and writes ``end-<rank>``.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RENDEZVOUS = r"""
import os, socket, sys, time
out = os.environ["JOBWIRE_OUTPUT_DIR"] if sys.argv[1] == "-" else sys.argv[1]
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
plain = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
env = {k: v for k, v in os.environ.items() if k.startswith("JOBWIRE_") or k in plain}
open(f"{out}/pid-{rank}", "w").write(str(os.getpid()))
if rank == 0:
    srv = socket.create_server((os.environ.get("BIND", addr), port))
    peers = []
    while len(peers) < world - 1:
        c, _ = srv.accept()
        peers.append((int(c.recv(16).decode()), c))
    seen = sorted([0] + [r for r, _ in peers])
    for _, c in peers:
        c.sendall(",".join(map(str, seen)).encode())
        c.close()
else:
    # a published port's proxy accepts before rank 0 listens and then closes: retry until rank 0 answers
    answer = b""
    for _ in range(300):
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.settimeout(None)
            c.sendall(str(rank).encode())
            answer = c.recv(64)
            if answer:
                break
        except OSError:
            pass
        time.sleep(0.1)
    seen = [int(x) for x in answer.decode().split(",")]
print(f"hello from rank {rank} of {world}", flush=True)
with open(f"{out}/rank-{rank}", "w") as f:
    f.write(repr({"seen": seen, "env": env}))
time.sleep(float(sys.argv[2]))
open(f"{out}/end-{rank}", "w").close()
"""


def rank_report(path: Path) -> dict[str, Any]:
    """What one rank wrote: ``{"seen": [0, 1, 2], "env": {...}}``."""
    value: dict[str, Any] = ast.literal_eval(path.read_text())
    return value


def met(dirs: Sequence[Path]) -> list[int] | None:
    """Every rank's pid once all ranks have met (rank r wrote ``rank-r`` in ``dirs[r]``), else None."""
    if not all((d / f"rank-{r}").exists() for r, d in enumerate(dirs)):
        return None
    return [int((d / f"pid-{r}").read_text()) for r, d in enumerate(dirs)]


def gone(pid: int) -> bool:
    """Whether process ``pid`` (on this machine) has ended: absent, or a zombie; one reaped between
    the signal probe and the /proc read counts as gone too."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (ProcessLookupError, FileNotFoundError):
        return True
