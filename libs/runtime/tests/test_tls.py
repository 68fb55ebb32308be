"""TLS to NATS is a configuration switch: a real nats-server with a TLS listener and fresh certificates.

A service given the CA (``JOBWIRE_NATS_TLS_CA``) connects and uses JetStream; without it, or with
another CA, it is refused. With ``verify: true`` the server also wants a client certificate
(``JOBWIRE_NATS_TLS_CERT``/``_KEY``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import TlsRefused, connect
from jobwire.runtime.settings import BusSettings, bus_settings
from tests.fixtures.nats import NatsServer, start_nats, stop_nats
from tests.support import tls

pytestmark = [pytest.mark.integration, pytest.mark.backend("nats")]


@dataclass
class TlsNats:
    server: NatsServer
    ca: tls.Authority
    client: tls.Pair
    stranger: tls.Authority  # a CA that signed nothing of this server's


def _conf(server: tls.Pair, ca: tls.Authority | None) -> str:
    verify = f'  ca_file: "{ca.cert}"\n  verify: true\n' if ca else ""
    return f'tls {{\n  cert_file: "{server.cert}"\n  key_file: "{server.key}"\n{verify}  timeout: 2\n}}\n'


@pytest.fixture(scope="module")
def certs() -> Iterator[tuple[Path, tls.Authority, tls.Pair, tls.Pair, tls.Authority]]:
    base = Path(tempfile.mkdtemp(prefix="jobwire-tls-"))
    ca = tls.authority(base / "ca")
    server = ca.issue(base / "server", "nats", hosts=("127.0.0.1", "localhost"))
    client = ca.issue(base / "client", "executor-a", client=True)
    stranger = tls.authority(base / "stranger", "someone-else")
    yield base, ca, server, client, stranger
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_nats(certs: tuple[Path, tls.Authority, tls.Pair, tls.Pair, tls.Authority]) -> Iterator[TlsNats]:
    base, ca, server_pair, client, stranger = certs
    server = start_nats(base / "nats", config=_conf(server_pair, None))
    yield TlsNats(server, ca, client, stranger)
    stop_nats(server)


@pytest.fixture(scope="module")
def mutual_nats(certs: tuple[Path, tls.Authority, tls.Pair, tls.Pair, tls.Authority]) -> Iterator[TlsNats]:
    base, ca, server_pair, client, stranger = certs
    server = start_nats(base / "nats-mtls", config=_conf(server_pair, ca))
    yield TlsNats(server, ca, client, stranger)
    stop_nats(server)


async def _refused(settings: BusSettings) -> str:
    """Refused at once with a message naming the settings (not retried forever like a server down)."""
    started = time.monotonic()
    with pytest.raises(TlsRefused, match="JOBWIRE_NATS_TLS_CA") as caught:
        await connect(settings, name="tls-test")
    assert time.monotonic() - started < 10
    return str(caught.value)


async def test_a_service_with_the_ca_connects_over_tls_and_uses_jetstream(tls_nats: TlsNats) -> None:
    env = {"JOBWIRE_NATS_URL": tls_nats.server.url, "JOBWIRE_NATS_TLS_CA": str(tls_nats.ca.cert)}
    bus = await connect(bus_settings(env), name="tls-test", declare=True)
    try:
        assert bus.nc.is_connected
        assert bus.nc._server_info.get("tls_required") is True  # the server accepts nothing else
        ack = await bus.publish(sj.event_subject("tls-job", "queued"), b"{}", msg_id="tls-job:0:queued")
        assert ack.stream == sj.EVT_STREAM and ack.seq >= 1
    finally:
        await bus.close()


async def test_a_tls_url_with_the_ca_connects(tls_nats: TlsNats) -> None:
    url = tls_nats.server.url.replace("nats://", "tls://")
    bus = await connect(BusSettings(nats_url=url, nats_tls_ca=str(tls_nats.ca.cert)), name="tls-test")
    try:
        assert bus.nc.is_connected and bus.nc.connected_url is not None
        assert bus.nc.connected_url.scheme == "tls"
    finally:
        await bus.close()


async def test_without_the_ca_or_with_another_the_connection_is_refused(tls_nats: TlsNats) -> None:
    plain = await _refused(BusSettings(nats_url=tls_nats.server.url))  # the system's CAs only
    assert "certificate verify failed" in plain, plain
    other = await _refused(BusSettings(nats_url=tls_nats.server.url, nats_tls_ca=str(tls_nats.stranger.cert)))
    assert "certificate verify failed" in other, other


async def test_mutual_tls_wants_a_client_certificate_from_the_ca(mutual_nats: TlsNats) -> None:
    url, ca = mutual_nats.server.url, str(mutual_nats.ca.cert)
    bus = await connect(
        BusSettings(
            nats_url=url,
            nats_tls_ca=ca,
            nats_tls_cert=str(mutual_nats.client.cert),
            nats_tls_key=str(mutual_nats.client.key),
        ),
        name="tls-test",
    )
    try:
        assert bus.nc.is_connected
    finally:
        await bus.close()
    refused = await _refused(BusSettings(nats_url=url, nats_tls_ca=ca))  # the CA alone is not enough here
    assert "certificate required" in refused, refused
