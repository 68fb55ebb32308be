"""``python -m jobwire.store migrate [URL]``: bring a database to the newest schema.

The URL defaults to ``JOBWIRE_DATABASE_URL``, else the SQLite file under ``.jobwire/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .engine import DEFAULT_SQLITE_URL, current_revision, migrate, normalize_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobwire.store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("migrate", help="upgrade the schema to the newest revision (idempotent)")
    up.add_argument("url", nargs="?", help="database URL (default: $JOBWIRE_DATABASE_URL, else SQLite)")
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("JOBWIRE_DATABASE_URL") or DEFAULT_SQLITE_URL
    try:
        shown = normalize_url(url).render_as_string(hide_password=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(migrate(url))
    print(f"{shown}: at revision {asyncio.run(current_revision(url))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
