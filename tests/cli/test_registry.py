"""The adapter registry on a fresh database: the shipped adapter is version 1 of the first refit's
gate and of ``adapters rollback`` (the real CLI as subprocesses), and the daemon following the
registry serves it and swaps back to it (through the API)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from models.checks import adapter_sha256
from models.loading import DEFAULT_PRESET
from models.seed import seed_shipped_adapter
from models.spec import load_spec
from schemas.db import make_engine
from schemas.settings import Settings, TrainingSettings
from training import registry
from tests.cli.runner import json_lines
from training.gate import decide

SHIPPED = "minilm-sst2"
NAME = TrainingSettings().adapter_name


def cli(*args: str, url: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env["SENTISTREAM_DATABASE__URL"] = url
    env.update(settings)
    # cwd: the default training.adapters_dir and reports_dir are relative ("adapters", "reports").
    proc = subprocess.run([sys.executable, "-m", "schemas.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def listed(url: str, cwd: Path, **settings: str) -> dict[str, dict]:
    """``adapters list`` as {version: {status, kind, gold}}."""
    header, *rows = cli("adapters", "list", url=url, cwd=cwd, **settings).stdout.splitlines()
    assert header.split()[:4] == ["version", "status", "kind", "gold"]
    out = {}
    for line in rows:
        version, status, kind, gold, _watermark, _date, _time = line.split()
        out[version] = {"status": status, "kind": kind, "gold": gold}
    return out


def sst2_head(data_dir: Path, n: int, dest: Path) -> Path:
    """The first ``n`` rows of SST-2's train.tsv (``sentence<TAB>label``, header kept)."""
    with (data_dir / "sst2" / "train.tsv").open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(n + 1)]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


def test_first_refit_is_gated_against_the_shipped_adapter_and_rollback_returns_to_it(
        make_database, data_dir, tmp_path):
    url = make_database(migrate=False)
    up = cli("db", "upgrade", url=url, cwd=tmp_path)
    assert f"registered shipped adapter '{SHIPPED}' as the active version of '{NAME}'" in up.stdout
    assert listed(url, tmp_path) == {SHIPPED: {"status": "active", "kind": "lora", "gold": "-"}}

    labels = sst2_head(data_dir, 500, tmp_path / "sst2-500.tsv")
    imported = cli("labels", "import", str(labels), url=url, cwd=tmp_path)
    assert {"file": str(labels), "written": 500, "rejected": 0} in json_lines(imported.stdout)

    # One epoch (default: 3): a quick first refit, which the shipped adapter should beat. 500 labels
    # exceed min_new_labels (200), so no --force.
    out = json.loads(cli("train", "--once", "--set", "epochs=1", url=url, cwd=tmp_path).stdout)
    version = out["version"]
    assert out["action"] in ("promoted", "rejected"), out

    # The decision follows from the gold metrics both adapters recorded, under the default gate.
    engine = make_engine(url)
    cand, shipped = registry.get(engine, version), registry.get(engine, SHIPPED)
    assert cand["parent_version"] == SHIPPED
    cand_gold, act_gold = cand["metrics"]["gold"], cand["metrics"]["active_gold"]
    assert shipped["metrics"]["gold"] == act_gold  # scored on the same gold set at this refit
    assert out["gold_macro_f1"] == cand_gold["macro_f1"] and out["active_gold_macro_f1"] == act_gold["macro_f1"]
    g = TrainingSettings()
    again = decide(cand_gold, act_gold, metric=g.primary_metric, margin=g.promote_margin,
                   recall_tolerance=g.recall_tolerance, new_label_error=cand["metrics"]["new_label_error"],
                   label_noise_tolerance=g.label_noise_tolerance)
    assert again.promote == (out["action"] == "promoted") and again.reasons == out["reasons"]
    if out["action"] == "promoted":
        assert cand_gold["macro_f1"] > act_gold["macro_f1"]
    else:
        assert registry.active(engine, NAME)["version"] == SHIPPED and cand["status"] == "rejected"
        promoted = cli("adapters", "promote", version, url=url, cwd=tmp_path)
        assert promoted.stdout.strip() == f"active: {version} (previous: {SHIPPED})"
    assert registry.active(engine, NAME)["version"] == version
    assert registry.get(engine, SHIPPED)["status"] == "retired"
    engine.dispose()

    back = cli("adapters", "rollback", url=url, cwd=tmp_path)
    assert back.stdout.strip() == f"rolled back {NAME}: {version} -> {SHIPPED}"
    assert listed(url, tmp_path) == {
        SHIPPED: {"status": "active", "kind": "lora", "gold": f"{act_gold['macro_f1']:.4f}"},
        version: {"status": "rejected", "kind": "lora", "gold": f"{cand_gold['macro_f1']:.4f}"},
    }


def test_daemon_following_the_registry_serves_the_shipped_adapter_and_swaps_back(
        database_url, data_dir, tmp_path):
    from daemon.app import Daemon
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    with (data_dir / "sst2" / "dev.tsv").open(encoding="utf-8") as f:
        texts = [line.split("\t")[0] for line in list(f)[1:33]]
    settings = Settings(database={"url": database_url}, model={"follow_registry": True})
    preset = load_classifier(ModelSettings(preset=DEFAULT_PRESET)).classify(texts).probs

    # An empty registry: the daemon serves the default preset and writes nothing to the registry.
    daemon = Daemon(settings)
    engine = daemon.db.engine
    assert registry.active(engine, NAME) is None
    served = daemon.worker.classifier
    assert served.adapter_version == SHIPPED
    np.testing.assert_allclose(served.classify(texts).probs, preset, atol=1e-4)

    # `db upgrade` registers the shipped adapter: the version already served, nothing to swap.
    assert seed_shipped_adapter(engine, settings.training).inserted
    row = registry.active(engine, NAME)
    assert row["version"] == SHIPPED and row["sha256"] == adapter_sha256(row["artifact_path"])
    assert Path(row["artifact_path"]) == load_spec(DEFAULT_PRESET).adapter.path.resolve()
    assert not daemon.watcher.check()

    # A promoted refit (here: a copy of the shipped files under a new version) is swapped in;
    # rollback swaps the shipped adapter back, loaded through the registry path (sha256 checked).
    refit = shutil.copytree(row["artifact_path"], tmp_path / "refit")
    registry.register(engine, name=NAME, version="refit-1", kind="lora", base_model=row["base_model"],
                      artifact_path=refit, sha256=adapter_sha256(refit), metrics={}, parent_version=SHIPPED,
                      label_watermark=0)
    registry.promote(engine, "refit-1", channel=settings.training.notify_channel)
    assert daemon.watcher.check() and daemon.worker.classifier.adapter_version == "refit-1"
    registry.rollback(engine, NAME, channel=settings.training.notify_channel)
    assert daemon.watcher.check() and daemon.worker.classifier.adapter_version == SHIPPED
    assert (daemon.worker.classifier.classify(texts).probs.argmax(1) == preset.argmax(1)).all()
    engine.dispose()


def test_db_upgrade_seeds_nothing_for_other_labels(make_database, tmp_path):
    url = make_database(migrate=False)
    # Non-default on purpose: three labels cannot use the shipped two-label adapter.
    three = {"SENTISTREAM_TRAINING__LABELS": '["negative", "neutral", "positive"]'}
    up = cli("db", "upgrade", url=url, cwd=tmp_path, **three)
    assert f"shipped adapter '{SHIPPED}' not registered for '{NAME}': training.labels" in up.stdout
    assert listed(url, tmp_path, **three) == {}


def test_db_upgrade_leaves_a_name_with_versions_alone(make_database, tmp_path):
    url = make_database(migrate=False)
    cli("db", "upgrade", url=url, cwd=tmp_path)
    # An operator who rejected every version keeps an empty choice: nothing is seeded again.
    engine = make_engine(url)
    registry.reject(engine, SHIPPED, ["rejected by operator"])
    engine.dispose()
    assert "nothing seeded" in cli("db", "upgrade", url=url, cwd=tmp_path).stdout
    assert listed(url, tmp_path) == {SHIPPED: {"status": "rejected", "kind": "lora", "gold": "-"}}

    # Non-default on purpose: a second adapter name cannot get the shipped version, which the
    # first name holds (versions are unique across names).
    tweets = {"SENTISTREAM_TRAINING__ADAPTER_NAME": "tweets"}
    up = cli("db", "upgrade", url=url, cwd=tmp_path, **tweets)
    assert f"'{SHIPPED}' not registered for 'tweets'" in up.stdout and f"adapter name '{NAME}'" in up.stdout
    assert listed(url, tmp_path, **tweets) == {}
