#!/usr/bin/python3
"""Small job behaviours for the Docker executor's tests (one file, standard library only)."""

import http.server
import json
import os
import signal
import sys
import time


def check() -> None:
    print("jobtool ok", sys.version.split()[0])


def work(steps: str, delay: str = "0.1") -> None:
    """Print, report progress, leave outputs; everything a user sees of a job."""
    out = os.environ["JOBWIRE_OUTPUT_DIR"]
    for i in range(1, int(steps) + 1):
        print(f"step {i}", flush=True)
        tmp = os.environ["JOBWIRE_PROGRESS_FILE"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"current": i, "total": int(steps)}, f)
        os.replace(tmp, os.environ["JOBWIRE_PROGRESS_FILE"])
        time.sleep(float(delay))
    os.makedirs(os.path.join(out, "sub"), exist_ok=True)
    with open(os.path.join(out, "result.txt"), "w") as f:
        f.write(f"done {steps}\n")
    with open(os.path.join(out, "sub", "env.json"), "w") as f:
        json.dump({k: v for k, v in os.environ.items() if k.startswith(("JOBWIRE_", "GREETING"))}, f)
    print("to stderr", file=sys.stderr, flush=True)


def hog(megabytes: str) -> None:
    """Touch more memory than the container may have."""
    blocks = []
    for _ in range(int(megabytes)):
        blocks.append(bytearray(1024 * 1024))
    print("allocated", len(blocks), "MiB", flush=True)


def serve(port: str) -> None:
    """A tiny interactive server, as a notebook would be."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from {os.environ.get('JOBWIRE_JOB_ID')}\n".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = http.server.HTTPServer(("0.0.0.0", int(port)), Handler)
    print("serving on", port, flush=True)
    server.serve_forever()


def stubborn(seconds: str) -> None:
    """Ignores TERM, so only the KILL after the grace period ends it."""
    signal.signal(signal.SIGTERM, lambda *_: print("TERM ignored", flush=True))
    print("started", flush=True)
    end = time.time() + float(seconds)
    while time.time() < end:
        time.sleep(0.05)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
