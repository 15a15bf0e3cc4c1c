"""Console roles, each one allowed everything the roles below it are."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    viewer = 1  # reads every page
    labeller = 2  # + labels
    curator = 3  # + promotes and rolls back adapters
    admin = 4  # + manages users

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name]


ROLE_NAMES = tuple(r.name for r in Role)
