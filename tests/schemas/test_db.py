"""schemas.db helpers that need no database."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from schemas.db import dialect_insert
from schemas.errors import ConfigError


def test_dialect_insert_is_the_dialects_own():
    assert dialect_insert("postgresql") is postgresql.insert
    assert dialect_insert("sqlite") is sqlite.insert


def test_an_unsupported_dialect_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match=r"^database\.url: dialect 'mysql' is not supported$"):
        dialect_insert("mysql")
