"""Session-wide fixtures: real backends started once per test run."""

pytest_plugins = ["tests.fixtures.nats", "tests.fixtures.postgres"]
