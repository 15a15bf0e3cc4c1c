"""The ``sentistream`` command. Packages add subcommands through the ``sentistream.commands``
entry-point group, so the CLI host needs no import of daemon or training."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from schemas.errors import SentistreamError


def _db_upgrade(args: argparse.Namespace) -> int:
    from schemas.db import upgrade
    from schemas.settings import load_settings

    settings = load_settings()
    upgrade(settings.database.url.get_secret_value(), args.revision)
    print(f"database at {settings.database.safe_url} is at revision {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentistream", description="Streaming sentiment daemon.")
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply Alembic migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)
    for ep in sorted(entry_points(group="sentistream.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as e:
            # One package's missing extra must not take the other commands down with it.
            print(f"sentistream: '{ep.name}' commands unavailable: {e}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SentistreamError as e:
        print(f"sentistream: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
