"""The REST steps every stack test takes (submit, wait for a state, read logs), written once for the
e2e, Docker, HPC and SSH suites instead of a copy in each conftest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

END = {"succeeded", "failed", "cancelled", "timed_out"}


def wait_for(
    pred: Callable[[], Any], timeout: float = 30.0, every: float = 0.1, what: str = "condition"
) -> Any:
    """``pred()``'s first truthy value, polled every ``every`` s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def submit(api: httpx.Client, **spec: Any) -> dict[str, Any]:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code in (201, 202), r.text
    return dict(r.json())


def wait_state(
    api: httpx.Client, job_id: str, states: set[str] | str, timeout: float = 30.0
) -> dict[str, Any]:
    want = {states} if isinstance(states, str) else states

    def check() -> dict[str, Any] | None:
        r = api.get(f"/v1/jobs/{job_id}")
        return r.json() if r.status_code == 200 and r.json()["state"] in want else None

    return dict(wait_for(check, timeout, what=f"job {job_id} to be {sorted(want)}"))


def logs(api: httpx.Client, job_id: str, stream: str = "stdout") -> str:
    r = api.get(f"/v1/jobs/{job_id}/logs", params={"stream": stream})
    assert r.status_code == 200, r.text
    return r.text


class JobApi(httpx.Client):
    """The API as a client with those steps; a suite sets the spec fields its jobs get by default."""

    END = END
    #: spec fields every submit gets unless the test gives them (a backend, an image)
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: how long wait_state waits unless told
    STATE_TIMEOUT: ClassVar[float] = 40.0

    wait_for = staticmethod(wait_for)

    def up_nodes(self) -> set[str]:
        body = self.get("/v1/nodes").json()
        items = body["items"] if isinstance(body, dict) else body
        return {n["name"] for n in items if n["state"] == "up"}

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_state(self, job_id: str, states: set[str] | str, timeout: float | None = None) -> dict[str, Any]:
        want = {states} if isinstance(states, str) else states
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            last = self.job(job_id)
            return last if last["state"] in want else None

        try:
            result: dict[str, Any] = self.wait_for(
                check, timeout or self.STATE_TIMEOUT, what=f"job {job_id} to be {sorted(want)}"
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {last}") from None
        return result

    def submit(self, **spec: Any) -> dict[str, Any]:
        for key, value in self.DEFAULTS.items():
            spec.setdefault(key, value)
        r = self.post("/v1/jobs", json=spec)
        assert r.status_code in (201, 202), r.text
        body: dict[str, Any] = r.json()
        return body

    def logs(self, job_id: str, stream: str | None = None) -> str:
        params = {"stream": stream} if stream else {}
        r = self.get(f"/v1/jobs/{job_id}/logs", params=params)
        assert r.status_code == 200, r.text
        return r.text
