"""``--version`` everywhere, and every subcommand's ``--help`` says what it does."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from schemas.cli import build_parser
from tests.cli.runner import clean_env, sentistream

COMMANDS = [("run",), ("classify",), ("demo",), ("db",), ("db", "upgrade"), ("labels",), ("labels", "import"),
            ("train",), ("trainer",), ("adapters",), ("adapters", "list"), ("adapters", "promote"),
            ("adapters", "rollback"), ("models",), ("models", "prepare"), ("console",), ("users",),
            ("users", "add"), ("users", "list"), ("users", "remove")]


def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (sub)command's parser, by its words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from parsers(sub, path + (name,))


def test_every_command_is_listed_here():
    assert sorted(p for p, _ in parsers(build_parser())) == sorted(COMMANDS)


def test_top_level_help_lists_the_commands():
    proc = sentistream("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "Streaming sentiment daemon" in out
    assert all(f"    {name}" in out for name in {words[0] for words in COMMANDS})


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_describes_the_command(words):
    description = dict(parsers(build_parser()))[words].description
    assert description and len(description.split()) >= 5, words
    proc = sentistream(*words, "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith(f"usage: sentistream {' '.join(words)}")
    assert " ".join(description.split()[:5]) in " ".join(out.split())
    assert "--version" in out


@pytest.mark.parametrize("words", [(), ("classify",), ("adapters", "list")], ids=lambda w: " ".join(w) or "top")
def test_version(words):
    proc = sentistream(*words, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == f"sentistream {version('sentistream')}\n"


def test_installed_script_prints_the_version():
    script = Path(sys.executable).with_name("sentistream")
    if not script.is_file():
        pytest.skip(f"no sentistream script next to {sys.executable}")
    proc = subprocess.run([str(script), "--version"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"sentistream {version('sentistream')}\n")
