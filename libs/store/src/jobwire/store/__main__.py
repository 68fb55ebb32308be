"""``python -m jobwire.store migrate [URL]``: bring a database to the newest schema.
``python -m jobwire.store token create OWNER [--admin] [--days N] [--scope S,...]``: mint a token
straight in the database (the first admin token of a deployment; later ones can come from the API).

The URL defaults to ``JOBWIRE_DATABASE_URL``, else the SQLite file under ``.jobwire/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from . import bootstrap, tokens
from .engine import DEFAULT_SQLITE_URL, current_revision, migrate, normalize_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobwire.store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("migrate", help="upgrade the schema to the newest revision (idempotent)")
    up.add_argument("url", nargs="?", help="database URL (default: $JOBWIRE_DATABASE_URL, else SQLite)")
    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    mint = token.add_parser("create", help="create a token and print its secret (shown only this once)")
    mint.add_argument("owner")
    mint.add_argument("--days", type=float, help="expires after this many days (default: never)")
    mint.add_argument("--scope", help=f"comma-separated, of: {', '.join(tokens.SCOPES)}")
    mint.add_argument("--admin", action="store_true", help="add the admin scope")
    mint.add_argument("--url", help="database URL (default: $JOBWIRE_DATABASE_URL, else SQLite)")
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("JOBWIRE_DATABASE_URL") or DEFAULT_SQLITE_URL
    try:
        shown = normalize_url(url).render_as_string(hide_password=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        scopes = args.scope.split(",") if args.scope else list(tokens.USER_SCOPES)
        try:
            new = asyncio.run(
                bootstrap.create(url, args.owner, scopes=scopes + ["admin"] * args.admin, days=args.days)
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(new.secret)
        print(f"{new.token.id} for {new.token.owner}: {', '.join(new.token.scopes)}", file=sys.stderr)
        return 0
    asyncio.run(migrate(url))
    print(f"{shown}: at revision {asyncio.run(current_revision(url))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
