"""Multi-adapter routing through the daemon: one base, the message's source picks the adapter."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.daemon.harness import DaemonThread, count, make_settings, make_topics, produce, wait_for
from tests.factories import build_lora_adapter

pytestmark = pytest.mark.kafka


def test_source_routes_messages_to_their_adapter(broker, topic_names, database_url, tiny_bert_dir, tmp_path):
    build_lora_adapter(tiny_bert_dir, tmp_path / "general", seed=1)
    build_lora_adapter(tiny_bert_dir, tmp_path / "tweets", seed=2)
    spec = {
        "name": "routed-tiny-bert", "base": {"id": str(tiny_bert_dir)}, "head": "sequence_classification",
        "device": "cpu", "labels": [{"id": 0, "name": "negative"}, {"id": 1, "name": "positive"}],
        "adapter": {"kind": "lora", "path": str(tmp_path / "general"), "version": "general-v1"},
        "adapters": [{"name": "tweets", "path": str(tmp_path / "tweets"), "version": "tweets-v1"}],
        "routes": [{"adapter": "tweets", "source": "twitter"}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    topics = make_topics(broker, topic_names)
    settings = make_settings(broker, database_url, topics, None, model={"spec_file": tmp_path / "spec.yaml"})
    n = 300
    sources = ["twitter", "app-review", None]
    produce(broker, topics["input"], (
        (f"m{i}".encode(), json.dumps({"id": f"m{i}", "text": f"route me {i}", "source": sources[i % 3]}).encode())
        for i in range(n)))
    with DaemonThread(settings):
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") == n, timeout=120)
    eng = create_engine(database_url)
    with eng.connect() as c:
        got = set(c.execute(text("select coalesce(source, '-'), adapter_version from predictions group by 1, 2")).all())
    eng.dispose()
    assert got == {("twitter", "tweets-v1"), ("app-review", "general-v1"), ("-", "general-v1")}
