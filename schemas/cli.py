"""The ``sentistream`` command. Packages add subcommands through the ``sentistream.commands``
entry-point group, so the CLI host needs no import of daemon or training.

The host reads the settings once, sets up logging from them for every command, and hands them to
the command as ``args.settings``.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version

from schemas.errors import SentistreamError


def _version() -> str:
    try:
        return f"sentistream {version('sentistream')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "sentistream (not installed)"


class _Parser(argparse.ArgumentParser):
    """Every parser, subcommands' included (add_subparsers makes them of this class), takes --version."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=_version(),
                          help="print the installed sentistream version and exit")


def _db_upgrade(args: argparse.Namespace) -> int:
    from alembic.util import CommandError
    from sqlalchemy import exc

    from schemas.db import unreachable, upgrade

    settings = args.settings
    try:
        upgrade(settings.database.url.get_secret_value(), args.revision)
    except exc.OperationalError as e:
        raise unreachable(settings.database, e) from None
    except CommandError as e:  # an unknown revision
        raise SentistreamError(f"db upgrade {args.revision}: {e}") from None
    print(f"database at {settings.database.safe_url} is at revision {args.revision}")
    if args.revision != "head":
        return 0  # an older schema may lack the tables the seeds write
    # Packages seed their rows (models: the shipped adapter) without schemas importing them.
    for ep in sorted(entry_points(group="sentistream.db_seed"), key=lambda e: e.name):
        print(ep.load()(settings))
    return 0


def add_group(sub: argparse._SubParsersAction, name: str, help: str, description: str) -> argparse._SubParsersAction:
    """A command with subcommands of its own (``sentistream NAME COMMAND``); returns where they go."""
    group = sub.add_parser(name, help=help, description=description)
    return group.add_subparsers(dest=f"{name}_command", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sentistream",
        description="Streaming sentiment daemon: classifies messages from Kafka into Postgres and Kafka, "
        "and trains the adapters it serves. Settings come from SENTISTREAM_* variables or the file "
        "named by SENTISTREAM_CONFIG_FILE; logs go to stderr (observability.log_format).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = add_group(sub, "db", help="database schema", description="Manage the database schema at database.url.")
    up = db.add_parser("upgrade", help="apply Alembic migrations",
                       description="Create or migrate the tables at database.url (SENTISTREAM_DATABASE__URL) "
                       "to REVISION, and seed the rows a fresh database needs.")
    up.add_argument("revision", nargs="?", default="head", help="Alembic revision (default: head)")
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


def _start(args: argparse.Namespace) -> None:
    """Read the settings and set up logging before any command runs; nothing is logged before this."""
    import os

    import structlog

    from schemas.logs import configure_logging
    from schemas.settings import load_settings, unknown_env_warnings

    args.settings = load_settings()
    configure_logging(args.settings.observability)
    for warning in unknown_env_warnings(os.environ):
        structlog.get_logger().warning("unknown_setting_variable", detail=warning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _start(args)
        return int(args.func(args) or 0)
    except SentistreamError as e:
        print(f"sentistream: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
