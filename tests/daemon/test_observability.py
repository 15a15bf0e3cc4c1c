from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from daemon.tansu_broker import free_port
from tests.daemon.harness import DaemonThread, count, make_settings, make_topics, produce, tweet, wait_for

pytestmark = pytest.mark.kafka


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_readiness_and_metrics(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    port = free_port()
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             observability={"http_port": port, "http_host": "127.0.0.1"})
    produce(broker, topics["input"], [tweet(i) for i in range(200)] + [(b"bad", b"\xff")])
    with DaemonThread(settings) as d:
        assert get(port, "/healthz")[0] == 200
        assert wait_for(lambda: get(port, "/readyz")[0] == 200, timeout=30)
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") == 200, timeout=60)
        assert wait_for(lambda: 'sentistream_dead_lettered_total{reason="undecodable_bytes"} 1.0'
                        in get(port, "/metrics")[1], timeout=10)
        code, body = get(port, "/metrics")
        assert code == 200
        assert f'sentistream_consumed_total{{topic="{topics["input"]}"}} 201.0' in body
        classified = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                         if line.startswith("sentistream_classified_total{"))
        assert classified == 200
        for name in ("sentistream_batch_size_bucket", "sentistream_inference_latency_seconds_bucket",
                     "sentistream_end_to_end_latency_seconds_bucket"):
            assert name in body
        # Lag is refreshed once a second from the fetch responses' high watermarks.
        assert wait_for(lambda: f'sentistream_consumer_lag{{partition="0",topic="{topics["input"]}"}} 0.0'
                        in get(port, "/metrics")[1], timeout=15)
        assert get(port, "/nope")[0] == 404
        d.daemon.stop()
        assert wait_for(lambda: get(port, "/readyz")[0] == 503 or not d.thread.is_alive(), timeout=10)


@pytest.fixture
def json_log():
    import io
    import logging

    import structlog

    from schemas.logs import configure_logging
    from schemas.settings import ObservabilitySettings

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(ObservabilitySettings(log_level="INFO", log_format="json"), stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_message_text_never_logged_at_info(broker, topic_names, database_url, tiny_bert_dir, json_log):
    topics = make_topics(broker, topic_names)
    secret_text = "confidential-customer-complaint-text"
    produce(broker, topics["input"], [tweet(i, text=f"{secret_text} {i}") for i in range(50)]
            + [(b"x", f'{{"id": "x", "text": "{secret_text}"'.encode())])
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             observability={"log_level": "INFO"})
    with DaemonThread(settings):
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") == 50, timeout=60)
    log = json_log.getvalue()
    assert '"event": "daemon_started"' in log  # the log was captured
    assert secret_text not in log
