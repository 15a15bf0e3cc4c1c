"""Where settings come from, and how a problem with one is reported: under the place the user set it.

An environment variable takes a list as JSON or comma-separated; the config file (YAML or TOML) is
read here first, so a syntax error is one line with file, line and column.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource

from schemas.errors import ConfigError

ENV_PREFIX = "SENTISTREAM_"
CONFIG_FILE_ENV = "SENTISTREAM_CONFIG_FILE"
# Variables the project reads that are no settings (tests, benchmarks): never a misspelt setting.
NOT_SETTINGS = frozenset({CONFIG_FILE_ENV, "SENTISTREAM_TEST_PG", "SENTISTREAM_BENCH_PG", "SENTISTREAM_PG_BIN"})
_SCALARS = (str, int, float, bool, Path)
_CONTAINERS = (list, tuple, set, frozenset)


def _members(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)


def _section(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_scalar_list(annotation: Any) -> bool:
    """Whether one of the annotation's types is a list of plain values (text, numbers, paths, literals)."""
    for t in _members(annotation):
        items = [a for a in get_args(t) if a is not Ellipsis]
        if get_origin(t) in _CONTAINERS and items and all(a in _SCALARS or get_origin(a) is Literal for a in items):
            return True
    return False


def _accepts(annotation: Any, value: str) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


class CommaListEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, where a list setting also takes ``a,b,c``."""

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            # Not JSON. A section or a list of objects needs JSON; a plain value the setting takes as
            # it is (class_weights=auto, target_modules=all-linear) stays a plain value.
            if field is None or not _is_scalar_list(field.annotation) or _accepts(field.annotation, value):
                raise
            return [item.strip() for item in value.split(",")]


# The config file.

def read_config_file(path: Path) -> dict[str, Any]:
    """The file's settings; a problem with the file itself is one line naming it (and line:column)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}={str(path)!r}: file not found")
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"{CONFIG_FILE_ENV}={str(path)!r}: use a .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file: {e}") from None
    data = _parse_toml(path, text) if suffix == ".toml" else _parse_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected setting sections at the top level (e.g. 'kafka:'), "
                          f"found a {type(data).__name__}")
    return data


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark, ctx = e.problem_mark or e.context_mark, e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = e.problem or e.context
        if e.problem and ctx and ctx is not mark:  # e.g. where the unclosed list began
            problem += f" ({e.context} at line {ctx.line + 1}, column {ctx.column + 1})"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None


def _parse_toml(path: Path, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib puts the position only in its message: "<problem> (at line L, column C)".
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(e))
        where, problem = (f"{path}:{m[2]}:{m[3]}", m[1]) if m else (str(path), str(e))
        raise ConfigError(f"{where}: invalid TOML: {problem}") from None


# Setting names.

def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in path)


def setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every setting's path, sections included (an environment variable can set a section as JSON)."""
    for name, info in model.model_fields.items():
        yield (*prefix, name)
        if (sub := _section(info.annotation)) is not None:
            yield from setting_paths(sub, (*prefix, name))


def unknown_env_warnings(environ: Mapping[str, str], model: type[BaseModel]) -> list[str]:
    """A line for each ``SENTISTREAM_*`` variable that is not a setting but looks like a misspelt one.

    Variables under a section (``SENTISTREAM_KAFKA__...``) are left out: validation rejects those."""
    paths = list(setting_paths(model))
    known = {env_name(p) for p in paths} | {CONFIG_FILE_ENV}
    sections = tuple(env_name((name,)) + "__" for name, info in model.model_fields.items() if _section(info.annotation))
    # Compared without the common prefix, which would make every pair look alike; a nested setting
    # also by its last part, for a flat LOG_LEVEL meant as OBSERVABILITY__LOG_LEVEL.
    candidates: dict[str, set[str]] = {}
    for name in known:
        rest = name.removeprefix(ENV_PREFIX)
        for key in {rest, rest.rsplit("__", 1)[-1]}:
            candidates.setdefault(key, set()).add(name)
    out = []
    for var in sorted(environ):
        name = var.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name in NOT_SETTINGS or name.startswith(sections):
            continue
        match = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), candidates, n=1, cutoff=0.8)
        if match:
            meant = " or ".join(sorted(candidates[match[0]]))
            out.append(f"{var} is not a setting and is ignored; did you mean {meant}?")
    return out


# Validation errors, reported where the value was set.

@dataclass(frozen=True)
class Sources:
    """What the user set: ``SENTISTREAM_*`` variables (names upper-cased) and the config file's content."""

    environ: Mapping[str, str]
    file: Path | None = None
    file_data: Mapping[str, Any] = field(default_factory=dict)


def describe_errors(error: ValidationError, model: type[BaseModel], src: Sources) -> str:
    """One line per setting at fault: where it was set, and what is wrong with it."""
    problems: dict[tuple[str, ...], list[str]] = {}
    for err in error.errors():
        path = _setting_path(model, err)
        msg = _message(model, err, path, src)
        if msg not in problems.setdefault(path, []):
            problems[path].append(msg)
    lines = [f"{_where(path, src)}: {'; '.join(msgs)}" for path, msgs in problems.items()]
    return "invalid setting " + "\n  ".join(lines)


def undecodable_env(model: type[BaseModel], src: Sources) -> list[str]:
    """Lines for variables that must hold JSON (a section, a list of objects) and do not."""
    out = []
    for path in setting_paths(model):
        name = env_name(path)
        if name not in src.environ or not _takes_json(_field(model, path).annotation):
            continue
        try:
            json.loads(src.environ[name])
        except ValueError as e:  # json's message gives the position, never the value
            out.append(f"{'.'.join(path)} ({name}): not valid JSON: {e}")
    return out


def _takes_json(annotation: Any) -> bool:
    return not _is_scalar_list(annotation) and any(
        _section(t) or t in (dict, list, tuple) or get_origin(t) in (*_CONTAINERS, dict) for t in _members(annotation))


def _field(model: type[BaseModel], path: tuple[str, ...]) -> FieldInfo:
    info = model.model_fields[path[0]]
    for part in path[1:]:
        info = _section(info.annotation).model_fields[part]
    return info


def _setting_path(model: type[BaseModel], err: Mapping[str, Any]) -> tuple[str, ...]:
    """The error's location cut to the setting (pydantic adds union members and list indices)."""
    path: list[str] = []
    cls: type[BaseModel] | None = model
    for part in err["loc"]:
        if cls is None or not isinstance(part, str):
            break
        if part in cls.model_fields:
            path.append(part)
            cls = _section(cls.model_fields[part].annotation)
        else:
            if err["type"] == "extra_forbidden":
                path.append(part)
            break
    return tuple(path)


def _message(model: type[BaseModel], err: Mapping[str, Any], path: tuple[str, ...], src: Sources) -> str:
    if err["type"] != "extra_forbidden" or not path:
        return err["msg"].removeprefix("Value error, ")
    parent = model
    for part in path[:-1]:
        parent = _section(parent.model_fields[part].annotation)
    match = difflib.get_close_matches(path[-1].lower(), parent.model_fields, n=1, cutoff=0.6)
    if not match:
        return "no such setting"
    meant = (*path[:-1], match[0])
    return f"no such setting; did you mean {env_name(meant) if _set_in_env(path, src) else '.'.join(meant)}?"


def _set_in_env(path: tuple[str, ...], src: Sources) -> list[str]:
    """The variables that set this value: its own, or a section above it as JSON (most specific first)."""
    return [env_name(path[:i]) for i in range(len(path), 0, -1) if env_name(path[:i]) in src.environ]


def _in_file(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:  # keys match case-insensitively, as pydantic-settings reads them
        keys = {str(k).lower(): k for k in data} if isinstance(data, Mapping) else {}
        if part.lower() not in keys:
            return False
        data = data[keys[part.lower()]]
    return True


def _where(path: tuple[str, ...], src: Sources) -> str:
    dotted = ".".join(path) or "settings"
    if env := _set_in_env(path, src):
        return f"{dotted} ({env[0]})"
    in_file = src.file is not None and _in_file(src.file_data, path)
    # A check across a section's values (fetch_max_wait_ms vs request_timeout_ms): name every place.
    below = sorted(n for n in src.environ if path and n.startswith(env_name(path) + "__"))
    if in_file and not below:
        return f"{dotted} in {src.file}"
    places = below + ([f"in {src.file}"] if in_file else [])
    # Nothing set it (a default, or an argument in code): name the variable that would.
    return f"{dotted} ({', '.join(places or [env_name(path)])})"
