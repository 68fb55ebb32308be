"""TLS to PostgreSQL is a configuration switch: a real server with ``ssl=on`` that refuses plain TCP.

The URL carries libpq's parameters (``sslmode=verify-full&sslrootcert=...``), which every service's
engine (``make_engine``: gateway, scheduler, migrate) turns into asyncpg's TLS context.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from jobwire.store import make_engine, migrate
from jobwire.store.engine import head_revision, pg_tls
from tests.fixtures.postgres import PostgresServer, start_postgres, stop_postgres
from tests.support import tls

pytestmark = [pytest.mark.integration, pytest.mark.backend("postgres")]

# TLS or nothing over TCP (the unix socket stays for pg_ctl)
HBA = """\
local all all trust
hostssl all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
"""


@dataclass
class TlsPostgres:
    server: PostgresServer
    ca: tls.Authority
    stranger: tls.Authority

    def url(self, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{self.server.database_url('postgres')}?{query}"


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    base = Path(tempfile.mkdtemp(prefix="jobwire-pgtls-"))
    ca = tls.authority(base / "ca")
    pair = ca.issue(base / "server", "postgres", hosts=("127.0.0.1",))  # not "localhost"

    def prepare(data: Path) -> None:
        # PostgreSQL wants its key private to the user it runs as (postgres, when we are root)
        owner = data.stat()
        for name, source in (("server.crt", pair.cert), ("server.key", pair.key)):
            shutil.copy(source, data / name)
            (data / name).chmod(0o600)
            shutil.chown(data / name, owner.st_uid, owner.st_gid)
        (data / "pg_hba.conf").write_text(HBA)

    server = start_postgres(options="-c ssl=on", prepare=prepare)
    yield TlsPostgres(server, ca, tls.authority(base / "stranger", "someone-else"))
    stop_postgres(server)
    shutil.rmtree(base, ignore_errors=True)


async def _ssl_in_use(url: str) -> bool:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            used = await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            return bool(used)
    finally:
        await engine.dispose()


async def test_verify_full_with_the_ca_migrates_and_runs_over_tls(tls_postgres: TlsPostgres) -> None:
    url = tls_postgres.url(sslmode="verify-full", sslrootcert=str(tls_postgres.ca.cert))
    await migrate(url)  # what the compose `migrate` service runs, through the same engine
    assert await _ssl_in_use(url)
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
    finally:
        await engine.dispose()


async def test_plain_tcp_is_refused_by_the_server(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(Exception, match="no encryption"):  # asyncpg's own error type
        await _ssl_in_use(tls_postgres.url(sslmode="disable"))


async def test_verify_full_without_the_ca_or_with_another_is_refused(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know ours
        await _ssl_in_use(tls_postgres.url(sslmode="verify-full"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _ssl_in_use(
            tls_postgres.url(sslmode="verify-full", sslrootcert=str(tls_postgres.stranger.cert))
        )


async def test_verify_full_checks_the_host_name_and_verify_ca_does_not(tls_postgres: TlsPostgres) -> None:
    ca = str(tls_postgres.ca.cert)
    full = make_url(tls_postgres.url(sslmode="verify-full", sslrootcert=ca)).set(host="localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):  # same server, other name
        await _ssl_in_use(full.render_as_string(hide_password=False))
    only_ca = make_url(tls_postgres.url(sslmode="verify-ca", sslrootcert=ca)).set(host="localhost")
    assert await _ssl_in_use(only_ca.render_as_string(hide_password=False))


def test_libpq_parameters_become_asyncpg_tls() -> None:
    bare, none = pg_tls(make_url("postgresql+asyncpg://u@h/db?application_name=x"))
    assert none is None and bare.query == {"application_name": "x"}
    stripped, mode = pg_tls(make_url("postgresql+asyncpg://u@h/db?sslmode=require"))
    assert mode == "require" and stripped.query == {}
    with pytest.raises(ValueError, match="sslmode='verify_full'"):
        pg_tls(make_url("postgresql+asyncpg://u@h/db?sslmode=verify_full"))
