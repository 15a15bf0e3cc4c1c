"""The Dockerfile's stages and hygiene, .dockerignore, and the demo profile's sample messages."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from schemas.errors import MessageError
from schemas.messages import EMPTY_TEXT, INVALID_JSON, MISSING_TEXT, decode_message
from tests.deploy.stack import DEPLOY, REPO, resolved_config

DOCKERFILE = REPO / "Dockerfile"
SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|CREDENTIAL", re.I)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined; heredoc bodies skipped."""
    out, buf, heredoc = [], "", None
    for line in DOCKERFILE.read_text().splitlines():
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        m = re.search(r"<<-?'?(\w+)'?", buf)
        heredoc = m.group(1) if m else None
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _stages() -> dict[str, dict]:
    stages: dict[str, dict] = {}
    current = None
    for word, rest in _instructions():
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = {"base": parts[0], "user": None, "env": [], "copy": []}
        elif current is None:
            continue
        elif word == "USER":
            current["user"] = rest
        elif word == "ENV":
            current["env"] += re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest)
        elif word == "COPY" and "--from" not in rest:
            current["copy"] += rest.split()[:-1]
    return stages


def _chain(stages: dict, name: str) -> list[str]:
    """The stage and the stages it is built on, down to an external image."""
    out = [name]
    while stages[out[-1]]["base"] in stages:
        out.append(stages[out[-1]]["base"])
    return out


def test_compose_build_targets_are_dockerfile_stages():
    stages = _stages()
    config = resolved_config()
    targets = {svc["build"]["target"] for svc in config["services"].values() if "build" in svc}
    assert targets == {"cpu", "gpu"}
    assert targets <= set(stages)


def test_gpu_on_cuda_runtime_cpu_on_slim_python():
    stages = _stages()
    assert stages[_chain(stages, "gpu")[-1]]["base"] == "${CUDA_IMAGE}"
    assert stages[_chain(stages, "cpu")[-1]]["base"] == "${PYTHON_IMAGE}"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:") and "-runtime-" in args["CUDA_IMAGE"]
    assert "slim" in args["PYTHON_IMAGE"]
    # Multi-stage: the final images copy a built venv instead of building in place.
    assert len(stages) >= 4


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_final_images_run_as_a_non_root_user(target):
    user = _stages()[target]["user"]
    assert user and user.split(":")[0] not in {"root", "0"}


def test_no_secrets_are_baked_into_the_image():
    for word, rest in _instructions():
        if word in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", rest.split()[0] if word == "ARG" else rest)
            assert not any(SECRETISH.search(n) for n in names), f"{word} {rest}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    ignored = False
    for p in patterns:
        negate = p.startswith("!")
        pat = p[1:] if negate else p
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.removeprefix("**/")) \
                or any(fnmatch.fnmatch(part, pat.removeprefix("**/")) for part in path.split("/")):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_and_clutter_out_but_sources_in():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".env", ".git", ".venv", "tests", "deploy", "var", "adapters", "sentistream.egg-info"):
        assert _ignored(path, patterns), f"{path} would be sent to the Docker build"
    copied = {src for stage in _stages().values() for src in stage["copy"]}
    assert {"pyproject.toml", "schemas", "daemon", "models", "training"} <= copied
    for src in copied:
        assert not _ignored(src, patterns), f"Dockerfile copies {src}, which .dockerignore excludes"
        assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


def test_demo_messages_decode_like_the_daemon_decodes_them():
    lines = (DEPLOY / "demo" / "messages.jsonl").read_bytes().splitlines()
    good, reasons = [], []
    for offset, value in enumerate(lines):
        try:
            good.append(decode_message(value, topic="in", partition=0, offset=offset, key=None,
                                       max_text_chars=10_000))
        except MessageError as e:
            reasons.append(e.kind)
    assert len(good) >= 30
    assert {m.source for m in good} == {"twitter", "reviews"}
    assert len({m.id for m in good}) == len(good)
    # The malformed lines each exercise a different dead-letter reason, as the dashboard shows.
    assert sorted(reasons) == sorted([EMPTY_TEXT, MISSING_TEXT, INVALID_JSON])


def test_requirements_stage_lists_every_dependency_but_torch(tmp_path):
    """Run the requirements stage's RUN step as the build would, and compare with pyproject.toml."""
    (run,) = [rest for word, rest in _instructions_of("requirements") if word == "RUN"]
    out = tmp_path / "requirements.txt"
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    extras = re.search(r"^ARG EXTRAS=(\S+)", DOCKERFILE.read_text(), re.M).group(1)
    assert run.startswith("python -c ")
    cmd = run.replace("/requirements.txt", str(out)).replace("python", shlex.quote(sys.executable), 1)
    subprocess.run(["sh", "-c", cmd], cwd=tmp_path, check=True,
                   env={"PATH": os.environ["PATH"], "EXTRAS": extras}, timeout=60)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [d for d in project["dependencies"] if not d.startswith("torch")]
    wanted += [d for e in extras.split(",") for d in project["optional-dependencies"][e]]
    assert out.read_text().split() == wanted
    # The torch the stages install is the one pyproject.toml pins.
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch=="))
    assert torch_pin == "torch==" + re.search(r"^ARG TORCH_VERSION=(\S+)", DOCKERFILE.read_text(), re.M).group(1)


def _instructions_of(stage: str) -> list[tuple[str, str]]:
    out, current = [], None
    for word, rest in _instructions():
        if word == "FROM":
            current = rest.split()[-1]
        elif current == stage:
            out.append((word, rest))
    return out
