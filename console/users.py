"""Console users: argon2 password hashes in ``console_users``, managed by ``sentistream users``."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from console.errors import UserError
from console.roles import ROLE_NAMES, Role
from schemas.db import ConsoleUserRow

T = ConsoleUserRow.__table__
MIN_PASSWORD_CHARS = 8
_hasher = PasswordHasher()
# Verified when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return password


def add_user(engine: Engine, name: str, role: str, password: str) -> User:
    if role not in ROLE_NAMES:
        raise UserError(f"unknown role {role!r}; use one of {', '.join(ROLE_NAMES)}")
    if not name.strip() or len(name) > 256:
        raise UserError("the user name must be 1 to 256 characters")
    with engine.begin() as c:
        if c.execute(select(T.c.id).where(T.c.name == name)).first():
            raise UserError(f"user {name!r} exists; 'sentistream users remove {name}' first to replace it")
        c.execute(T.insert().values(name=name, role=role, password_hash=_hasher.hash(check_password(password))))
    return User(name, Role.parse(role))


def remove_user(engine: Engine, name: str) -> None:
    with engine.begin() as c:
        if not c.execute(delete(T).where(T.c.name == name)).rowcount:
            raise UserError(f"no user {name!r}; see 'sentistream users list'")


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as c:
        return [User(r.name, Role.parse(r.role)) for r in c.execute(select(T.c.name, T.c.role).order_by(T.c.name))]


def count_users(c: Connection) -> int:
    return c.execute(select(func.count()).select_from(T)).scalar_one()


def find_user(c: Connection, name: str) -> User | None:
    row = c.execute(select(T.c.name, T.c.role).where(T.c.name == name)).first()
    return User(row.name, Role.parse(row.role)) if row else None


def authenticate(c: Connection, name: str, password: str) -> User | None:
    row = c.execute(select(T.c.name, T.c.role, T.c.password_hash).where(T.c.name == name)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return User(row.name, Role.parse(row.role)) if row else None
