"""Settings from the environment."""

from __future__ import annotations

import pytest

from jobwire.gateway import gateway_settings

pytestmark = pytest.mark.unit


def test_settings_come_from_the_environment():
    env = {
        "JOBWIRE_GATEWAY_PORT": "9000",
        "JOBWIRE_GATEWAY_ACCEPT_TIMEOUT": "1.5",
        "JOBWIRE_DATABASE_URL": "sqlite+aiosqlite:///x.db",
        "JOBWIRE_NATS_URL": "nats://example:4222",
    }
    s = gateway_settings(env)
    assert s.port == 9000
    assert s.host == "127.0.0.1"
    assert s.accept_timeout == 1.5
    assert s.database_url == "sqlite+aiosqlite:///x.db"
    assert s.bus.nats_url == "nats://example:4222"
    assert s.max_body_size == 1024 * 1024
