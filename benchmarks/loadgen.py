"""HTTP load: ``wrk`` when it is installed (one thread, N keep-alive connections, like the issue's own
measurements), else a lean asyncio client that does the same (one request in flight per connection).

Both report the same figures: requests/s, p50/p99 latency and errors (failed connections, timeouts and any
answer other than 2xx). ``paced`` sends at a fixed rate instead, for the memory soak.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Load:
    """One POST repeated: where, what, with which headers."""

    url: str
    path: str
    body: bytes
    headers: dict[str, str]
    #: a fresh ``Idempotency-Key`` on every request (as a client that retries safely sends them)
    keyed: bool = False


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def tool() -> str:
    return "wrk" if shutil.which("wrk") else "python-asyncio"


def run(load: Load, connections: int, seconds: float) -> dict[str, float | int | str]:
    """``connections`` clients for ``seconds``: the figures of one point on the curve."""
    if shutil.which("wrk"):
        return _wrk(load, connections, seconds)
    return asyncio.run(_python(load, connections, seconds))


_LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nBENCH {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
#: with ``Load.keyed``: each request its own key (the prefix tells one run's keys from another's)
_LUA_KEYED = """
sent = 0
request = function()
  sent = sent + 1
  wrk.headers["Idempotency-Key"] = {prefix} .. sent
  return wrk.format()
end
"""


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def _wrk(load: Load, connections: int, seconds: float) -> dict[str, float | int | str]:
    headers = {"Content-Type": "application/json", **load.headers}
    lines = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_LUA.format(body=_lua_string(load.body), headers=lines))
        if load.keyed:
            f.write(_LUA_KEYED.format(prefix=_lua_string(f"{uuid.uuid4().hex}-")))
        script = f.name
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script,
                load.url + load.path,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    finally:
        Path(script).unlink()
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "connections": connections,
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms_p50": round(raw["p50_us"] / 1000, 2),
        "latency_ms_p99": round(raw["p99_us"] / 1000, 2),
        "latency_ms_max": round(raw["max_us"] / 1000, 2),
        "errors": errors,
    }


def request_bytes(load: Load) -> bytes:
    """The raw HTTP/1.1 request of ``load`` (a fresh ``Idempotency-Key`` each call where keyed)."""
    host = urlsplit(load.url).netloc
    keyed = {"Idempotency-Key": uuid.uuid4().hex} if load.keyed else {}
    head = [
        f"POST {load.path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(load.body)}",
    ]
    head += [f"{k}: {v}" for k, v in {**load.headers, **keyed}.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + load.body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One request on a kept-alive connection; the answer's status (its body is read and dropped)."""
    return (await exchange(reader, writer, request))[0]


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One request on a kept-alive connection: the answer's status and body (``Content-Length`` framed,
    as the gateway answers)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length) if length else b""


async def _python(load: Load, connections: int, seconds: float) -> dict[str, float | int | str]:
    split = urlsplit(load.url)
    request = request_bytes(load)
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                one = request_bytes(load) if load.keyed else request
                try:
                    status = await asyncio.wait_for(_exchange(reader, writer, one), 10)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(split.hostname, split.port)
                    continue
                latencies.append(time.perf_counter() - t0)
                errors += not 200 <= status < 300
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return {
        "connections": connections,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(pct(latencies, 50) * 1000, 2),
        "latency_ms_p99": round(pct(latencies, 99) * 1000, 2),
        "latency_ms_max": round(max(latencies, default=float("nan")) * 1000, 2),
        "errors": errors,
    }


async def paced(load: Load, rate: float, seconds: float, connections: int = 32) -> dict[str, float | int]:
    """``rate`` requests/s for ``seconds`` over a pool of connections (requests that find every connection
    busy wait for one: the offered rate is kept only while the server keeps up, which is reported)."""
    split = urlsplit(load.url)
    request = request_bytes(load)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(split.hostname, split.port))
    latencies: list[float] = []
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal errors
        conn = await pool.get()
        t0 = time.perf_counter()
        try:
            status = await asyncio.wait_for(_exchange(*conn, request), 10)
            errors += not 200 <= status < 300
            latencies.append(time.perf_counter() - t0)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            errors += 1
            conn[1].close()
            conn = await asyncio.open_connection(split.hostname, split.port)
        pool.put_nowait(conn)

    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) < start + seconds:
        due = int((now - start) * rate) + 1
        while sent < due:
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {
        "offered_per_s": round(rate, 1),
        "served_per_s": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "latency_ms_p50": round(pct(latencies, 50) * 1000, 2),
        "latency_ms_p99": round(pct(latencies, 99) * 1000, 2),
        "errors": errors,
    }
