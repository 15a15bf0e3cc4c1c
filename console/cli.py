"""``sentistream console`` and ``sentistream users add|list|remove``."""

from __future__ import annotations

import argparse
import getpass
import sys

from schemas.cli import add_group


def _engine(args: argparse.Namespace):
    from schemas.db import check_database, database_engine

    check_database(args.settings.database)
    return database_engine(args.settings.database)


def _console(args: argparse.Namespace) -> int:
    from console.server import serve

    return serve(args.settings)


def _read_password(from_stdin: bool) -> str:
    from console.errors import UserError

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise UserError("the passwords differ")
    return password


def _users_add(args: argparse.Namespace) -> int:
    from console.users import add_user, check_password

    password = check_password(_read_password(args.password_stdin))
    user = add_user(_engine(args), args.name, args.role, password)
    print(f"added {user.name} ({user.role.name})")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    from console.users import list_users

    for user in list_users(_engine(args)):
        print(f"{user.name}\t{user.role.name}")
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    from console.users import remove_user

    remove_user(_engine(args), args.name)
    print(f"removed {args.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from console.roles import ROLE_NAMES

    con = sub.add_parser("console", help="the analyst console (web application)",
                         description="Serve the analyst console on console.host:console.port "
                         "(SENTISTREAM_CONSOLE__HOST, __PORT): live view, drift, labelling queue, adapters, "
                         "search. Needs PostgreSQL and at least one user ('sentistream users add').")
    con.set_defaults(func=_console)
    users = add_group(sub, "users", help="console users",
                      description="Add, list and remove the analyst console's users and their roles.")
    add = users.add_parser("add", help="add a user", description="Add a console user; the password is read "
                           "from a prompt, or from the first line of stdin with --password-stdin.")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLE_NAMES,
                     help="viewer reads; labeller labels; curator promotes and rolls back; admin manages users")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=_users_add)
    listing = users.add_parser("list", help="list users",
                               description="List the console users, one per line: name, a tab, role.")
    listing.set_defaults(func=_users_list)
    rm = users.add_parser("remove", help="remove a user", description="Remove a console user; their labels "
                          "stay, and their open sessions end at their next request.")
    rm.add_argument("name")
    rm.set_defaults(func=_users_remove)
