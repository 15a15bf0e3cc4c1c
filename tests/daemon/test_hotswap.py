"""Hot swap on real services: an adapter promoted mid-stream is served without a restart."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from daemon.hotswap import AdapterWatcher
from models.checks import adapter_sha256
from tests.daemon.harness import (
    DaemonThread,
    count,
    make_settings,
    make_topics,
    produce,
    read_topic,
    tweet,
    wait_for,
)
from tests.factories import build_lora_adapter
from training import registry

pytestmark = pytest.mark.kafka
CHANNEL = "sentistream_adapters"


def register(engine, name, version, path, sha=None):
    registry.register(engine, name=name, version=version, kind="lora", base_model="tiny-bert",
                      artifact_path=path, sha256=sha or adapter_sha256(path), metrics={},
                      parent_version=None, label_watermark=0)


@pytest.fixture
def adapters(tmp_path, tiny_bert_dir):
    return {v: build_lora_adapter(tiny_bert_dir, tmp_path / v, seed=i) for i, v in enumerate(["v1", "v2", "v3"])}


def test_promotion_mid_stream_swaps_without_loss(broker, topic_names, database_url, tiny_bert_dir, adapters):
    engine = create_engine(database_url)
    register(engine, "default", "v1", adapters["v1"])
    registry.promote(engine, "v1", channel=CHANNEL)
    topics = make_topics(broker, topic_names)
    # Polling every 60 s: a swap within seconds can only come from LISTEN/NOTIFY.
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             model={"follow_registry": True, "registry_poll_s": 60})
    n = 5000

    def stream():
        for start in range(0, n, 250):
            produce(broker, topics["input"], (tweet(i) for i in range(start, start + 250)))
            time.sleep(0.15)

    with DaemonThread(settings) as d:
        assert d.daemon.worker.classifier.adapter_version == "v1"
        producer = threading.Thread(target=stream)
        producer.start()
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 1500, timeout=120)
        register(engine, "default", "v2", adapters["v2"])
        promoted_at = time.monotonic()
        registry.promote(engine, "v2", channel=CHANNEL)
        assert wait_for(lambda: d.daemon.worker.classifier.adapter_version == "v2", timeout=20)
        noticed_s = time.monotonic() - promoted_at
        producer.join()
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= n, timeout=180)

    with engine.connect() as c:
        assert c.execute(text("select count(*), count(distinct message_id) from predictions")).one() == (n, n)
        versions = dict(c.execute(text("select adapter_version, count(*) from predictions group by 1")).all())
        # Per partition, every v1 row precedes every v2 row: the swap happened once, between batches.
        overlap = c.execute(text(
            "select count(*) from (select partition, max(\"offset\") filter (where adapter_version = 'v1') as last_v1,"
            " min(\"offset\") filter (where adapter_version = 'v2') as first_v2 from predictions group by partition) p"
            " where last_v1 > first_v2")).scalar_one()
        times = [r[0] for r in c.execute(text("select classified_at from predictions order by classified_at"))]
        last_v1 = c.execute(text("select max(classified_at) from predictions where adapter_version = 'v1'")).scalar_one()
        first_v2 = c.execute(text("select min(classified_at) from predictions where adapter_version = 'v2'")).scalar_one()
    engine.dispose()
    assert set(versions) == {"v1", "v2"} and sum(versions.values()) == n
    assert versions["v1"] >= 1500 and versions["v2"] > 0
    assert overlap == 0
    out = read_topic(broker, topics["output"], n)
    assert {r.key.decode() for r in out} == {f"m{i}" for i in range(n)}
    assert {dict(r.headers)["adapter-version"] for r in out} == {b"v1", b"v2"}

    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:]) if b > a]
    pause = (first_v2 - last_v1).total_seconds()
    print(f"\nhot swap: noticed {noticed_s:.2f} s after promotion; "
          f"pause between last v1 and first v2 classification {pause * 1000:.1f} ms "
          f"(median gap between classification batches {statistics.median(gaps) * 1000:.1f} ms); "
          f"v1 rows {versions['v1']}, v2 rows {versions['v2']}")


def test_checksum_mismatch_is_refused_and_old_adapter_keeps_serving(database_url, tiny_bert_dir, adapters):
    from schemas.settings import Settings

    engine = create_engine(database_url)
    register(engine, "default", "v1", adapters["v1"])
    registry.promote(engine, "v1", channel=CHANNEL)
    settings = Settings(database={"url": database_url},
                        model={"path": tiny_bert_dir, "follow_registry": True})
    swapped = []
    watcher = AdapterWatcher(settings, engine, swapped.append, current_version=None)
    assert watcher.check() and swapped[-1].adapter_version == "v1"

    register(engine, "default", "v3", adapters["v3"], sha="0" * 64)
    registry.promote(engine, "v3", channel=CHANNEL)
    assert not watcher.check()
    assert watcher.current == "v1" and len(swapped) == 1 and "v3" in watcher.refused

    # Tampered files after registration are refused the same way.
    register(engine, "default", "v2", adapters["v2"])
    (adapters["v2"] / "adapter_config.json").write_text("{}")
    registry.promote(engine, "v2", channel=CHANNEL)
    assert not watcher.check() and watcher.current == "v1"
    engine.dispose()
