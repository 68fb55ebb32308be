"""Session-wide fixtures: real backends started once per test run."""

pytest_plugins = [
    "tests.fixtures.nats",
    "tests.fixtures.postgres",
    "tests.fixtures.slurm",
    "tests.fixtures.sge",
    "tests.fixtures.host",
    "tests.fixtures.batch_accounts",
]
