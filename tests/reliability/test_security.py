"""Security: safe model formats only, no remote code, secrets kept out of logs, TLS/SASL settings
passed through to the clients, and a least-privilege database role that is enough to run."""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from daemon.batch import Batch, Classified, Item
from daemon.errors import SinkRejected, SinkUnavailable
from daemon.sinks.postgres import PostgresSink
from models.checks import check_no_remote_code, refuse_pickles
from models.errors import UnsafeModelError
from models.loading import load_classifier
from schemas.db import check_database, connect_args
from schemas.errors import ConfigError, DatabaseUnavailable
from schemas.messages import DeadLetter, InboundMessage, utcnow
from schemas.settings import DatabaseSettings, KafkaSettings, ModelSettings, Settings, load_settings
from tests.daemon.harness import (
    DaemonThread, count, daemon_env, log_of, make_settings, make_topics, produce, start, tweet, wait_for,
)
from tests.errors import chain_mentions
from tests.factories import build_lora_adapter

DB_PASSWORD = "pg-S3CRET-7f3a9"
SASL_PASSWORD = "sasl-S3CRET-91bc2"


class _Trap:
    """Unpickling this creates ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_bert_dir):
    root = tmp_path_factory.mktemp("adapters")
    safe = build_lora_adapter(tiny_bert_dir, root / "safe", seed=1)
    marker = root / "pickle-was-loaded"
    pickled = root / "pickled"
    pickled.mkdir()
    shutil.copy(safe / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(pickle.dumps({"weights": _Trap(marker)}))
    both = root / "both"
    shutil.copytree(safe, both)
    shutil.copy(pickled / "adapter_model.bin", both)
    return {"safe": safe, "pickled": pickled, "both": both, "marker": marker}


# Model files: safetensors only, no remote code.

def test_safetensors_adapter_loads(adapters, tiny_bert_dir):
    clf = load_classifier(ModelSettings(path=tiny_bert_dir, adapter_path=adapters["safe"], adapter_version="v1"))
    assert clf.classify(["fine"]).adapter_versions == ("v1",)


@pytest.mark.parametrize("kind", ["pickled", "both"])
def test_pickle_adapter_refused_without_loading_it(adapters, tiny_bert_dir, kind):
    with pytest.raises(UnsafeModelError, match=r"pickle files \['adapter_model.bin'\] are refused.*safe_serialization"):
        load_classifier(ModelSettings(path=tiny_bert_dir, adapter_path=adapters[kind]))
    with pytest.raises(UnsafeModelError, match="re-save the weights as .safetensors"):
        refuse_pickles(adapters[kind], "adapter")  # the check every adapter format goes through
    assert not adapters["marker"].exists()


@pytest.mark.kafka
def test_daemon_refuses_pickle_adapter_at_start_up(adapters, broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    env = daemon_env(broker, database_url, topics, tiny_bert_dir,
                     SENTISTREAM_MODEL__ADAPTER_PATH=str(adapters["pickled"]))
    proc = start(env)
    code = proc.wait(120)
    err = log_of(proc, tail=None)
    assert code == 2, err[-2000:]
    assert f"adapter {adapters['pickled']}: pickle files ['adapter_model.bin'] are refused" in err
    assert not adapters["marker"].exists()


def test_trust_remote_code_cannot_be_enabled(monkeypatch):
    assert Settings().model.trust_remote_code is False
    with pytest.raises(ValidationError):
        ModelSettings(trust_remote_code=True)
    monkeypatch.setenv("SENTISTREAM_MODEL__TRUST_REMOTE_CODE", "true")
    with pytest.raises(ConfigError, match="SENTISTREAM_MODEL__TRUST_REMOTE_CODE"):
        load_settings()


def test_model_with_remote_code_never_runs_it(tmp_path, tiny_bert_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    marker = tmp_path / "remote-code-ran"
    (model / "modeling_evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertForSequenceClassification as Evil\n")
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.Evil"}
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeModelError, match="remote code is never run"):
        check_no_remote_code(cfg, "base.id")
    with pytest.raises(UnsafeModelError, match="remote code is never run"):
        load_classifier(ModelSettings(path=model))  # refused outright, before any model file is read
    assert not marker.exists()


# Secrets.

def test_settings_never_show_secrets():
    s = Settings(database={"url": f"postgresql+psycopg://svc:{DB_PASSWORD}@db:5432/x"},
                 kafka={"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc", "sasl_password": SASL_PASSWORD})
    for shown in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()), s.database.safe_url):
        assert DB_PASSWORD not in shown and SASL_PASSWORD not in shown
    with pytest.raises(ConfigError) as e:  # a bad setting next to a secret: the error names it, not the secret
        load_settings(database={"url": f"postgresql+psycopg://svc:{DB_PASSWORD}@db:5432/x", "pool_size": -1})
    assert "database.pool_size" in str(e.value) and DB_PASSWORD not in str(e.value)


def test_database_errors_do_not_carry_the_password():
    sink = PostgresSink(DatabaseSettings(url=SecretStr(f"postgresql+psycopg://svc:{DB_PASSWORD}@127.0.0.1:1/x"),
                                         connect_timeout_s=1))
    dead = DeadLetter(original=b"x", topic="t", partition=0, offset=0, error_kind="k", error_text="e")
    with pytest.raises(SinkUnavailable) as e:
        sink.write(Batch(dead=[dead]))
    sink.close()
    assert DB_PASSWORD not in str(e.value) and DB_PASSWORD not in repr(e.value)


def test_database_errors_do_not_carry_message_text(make_database):
    """A refused batch (here: no tables) fails with the driver's first line, never the statement's
    parameters; neither does any exception it was raised from."""
    marker = "MARKER-TEXT-9034"
    sink = PostgresSink(DatabaseSettings(url=SecretStr(make_database(migrate=False))))
    item = Item(InboundMessage(id="m1", text=f"{marker} hello"), "t", 0, 0, 0, None, marker.encode())
    batch = Batch(items=[item], predictions=[Classified(
        message_id="m1", label="positive", label_id=1, scores={"negative": 0.1, "positive": 0.9}, confidence=0.9,
        model_version="v", adapter_version=None, latency_ms=1.0, source=None, lang=None, lang_supported=None,
        received_at=utcnow(), classified_at=utcnow())])
    with pytest.raises(SinkRejected) as e:
        sink.write(batch)
    sink.close()
    assert 'UndefinedTable: relation "predictions" does not exist' in str(e.value)
    assert chain_mentions(e.value, marker) == []


@pytest.mark.kafka
def test_daemon_logs_hold_no_secrets_and_no_message_text(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    marker = "MARKER-TEXT-5521"
    produce(broker, topics["input"], [tweet(i, text=f"{marker} number {i}") for i in range(150)]
            + [(b"bad", b'{"id": "bad", "text": ' + marker.encode())])
    # Trust auth ignores the password, so the daemon runs with it set. The mock broker has no SASL:
    # PLAINTEXT keeps the SASL settings configured (and passed to kafka-python) but unused.
    url = make_url(database_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    env = daemon_env(broker, url, topics, tiny_bert_dir,
                     SENTISTREAM_OBSERVABILITY__LOG_LEVEL="DEBUG", SENTISTREAM_OBSERVABILITY__LOG_FORMAT="json",
                     SENTISTREAM_KAFKA__SASL_MECHANISM="PLAIN", SENTISTREAM_KAFKA__SASL_USERNAME="svc",
                     SENTISTREAM_KAFKA__SASL_PASSWORD=SASL_PASSWORD)
    proc = start(env)
    assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 150
                    and count(database_url, "select count(*) from dead_letters") >= 1 or proc.poll() is not None,
                    timeout=120)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log = log_of(proc, tail=None)
    assert proc.returncode == 0, log[-2000:]
    assert '"event": "daemon_started"' in log and "***" in log  # logged, with the URL masked
    assert DB_PASSWORD not in log and SASL_PASSWORD not in log
    info_up = [line for line in log.splitlines()
               if line.startswith("{") and json.loads(line).get("level") in ("info", "warning", "error")]
    assert info_up and not [line for line in info_up if marker in line]


# Transport security settings reach the clients.

def test_kafka_sasl_ssl_settings_pass_through(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    s = KafkaSettings(bootstrap_servers="k1:9093,k2:9093", security_protocol="SASL_SSL",
                      sasl_mechanism="SCRAM-SHA-512", sasl_username="svc", sasl_password=SASL_PASSWORD,
                      ssl_cafile=ca, ssl_certfile=cert, ssl_keyfile=key, ssl_check_hostname=True)
    cfg = s.client_config()
    assert cfg["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert cfg["security_protocol"] == "SASL_SSL"
    assert (cfg["sasl_mechanism"], cfg["sasl_plain_username"], cfg["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "svc", SASL_PASSWORD)
    assert (cfg["ssl_cafile"], cfg["ssl_certfile"], cfg["ssl_keyfile"]) == (str(ca), str(cert), str(key))
    assert cfg["ssl_check_hostname"] is True
    # Every key is one kafka-python's consumer and producer accept.
    assert set(cfg) <= set(KafkaConsumer.DEFAULT_CONFIG) and set(cfg) <= set(KafkaProducer.DEFAULT_CONFIG)
    plain = KafkaSettings().client_config()
    assert plain["security_protocol"] == "PLAINTEXT" and not any(k.startswith(("ssl_", "sasl_")) for k in plain)


def test_kafka_security_from_environment(monkeypatch):
    monkeypatch.setenv("SENTISTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SENTISTREAM_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("SENTISTREAM_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("SENTISTREAM_KAFKA__SASL_PASSWORD", SASL_PASSWORD)
    cfg = load_settings().kafka.client_config()
    assert cfg["sasl_plain_password"] == SASL_PASSWORD and "ssl_cafile" not in cfg


def test_postgres_ssl_settings_pass_through(tmp_path):
    root = tmp_path / "root.crt"
    args = connect_args(DatabaseSettings(url=SecretStr("postgresql+psycopg://u@db/x"), sslmode="verify-full",
                                         sslrootcert=root, connect_timeout_s=7))
    assert args == {"connect_timeout": 7, "sslmode": "verify-full", "sslrootcert": str(root)}
    assert connect_args(DatabaseSettings(url=SecretStr("sqlite:///x.db"), sslmode="require")) == {}


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def test_postgres_ssl_is_used_and_verified(own_postgres, tmp_path):
    pg = own_postgres
    cert, key = _self_signed(pg.root)
    pg.own(cert)
    pg.own(key)
    pg.stop()
    pg.start(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key))
    query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
    for mode, root in (("require", None), ("verify-full", cert)):
        sink = PostgresSink(DatabaseSettings(url=SecretStr(pg.url), sslmode=mode, sslrootcert=root))
        with sink.engine.connect() as c:
            assert c.execute(text(query)).scalar_one() is True, mode
        sink.close()
    # verify-full against a CA that did not sign the server's certificate: no connection.
    other, _ = _self_signed(tmp_path)
    sink = PostgresSink(DatabaseSettings(url=SecretStr(pg.url), sslmode="verify-full", sslrootcert=other))
    assert sink.ping() is False
    sink.close()


# Least privilege.

def least_privilege_role(admin, database_url: str) -> str:
    """A role with docs/reliability.md's daemon grants (but the alembic_version one): its name."""
    role = f"sentistream_writer_{uuid.uuid4().hex[:8]}"
    db = make_url(database_url).database
    grants = [
        f"CREATE ROLE {role} LOGIN",
        f'GRANT CONNECT ON DATABASE "{db}" TO {role}',
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT INSERT ON predictions, dead_letters TO {role}",
        # ON CONFLICT (cols) reads the conflict columns, and a one-row insert returns the new id.
        f"GRANT SELECT (message_id) ON predictions TO {role}",
        f'GRANT SELECT (id, topic, partition, "offset") ON dead_letters TO {role}',
        f"GRANT USAGE ON SEQUENCE dead_letters_id_seq TO {role}",
    ]
    with admin.connect() as c:
        for sql in grants:
            c.execute(text(sql))
    return role


def drop_role(admin, role: str) -> None:
    with admin.connect() as c:
        c.execute(text(f"DROP OWNED BY {role}"))
        c.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_without_temporary_tables_the_sink_inserts_and_says_how_to_copy(database_url):
    """The COPY path stages rows in a temporary table; a database where PUBLIC lost TEMPORARY still
    gets every row, by INSERT, and the log names the grant."""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    role = least_privilege_role(admin, database_url)
    try:
        with admin.connect() as c:
            c.execute(text(f'REVOKE TEMPORARY ON DATABASE "{make_url(database_url).database}" FROM PUBLIC'))
        url = make_url(database_url).set(username=role).render_as_string(hide_password=False)
        sink = PostgresSink(DatabaseSettings(url=SecretStr(url)))
        now = utcnow()
        items = [Item(InboundMessage(id=f"m{i}", text="hello"), "t", 0, i, 0, None, b"hello") for i in range(3)]
        batch = Batch(items=items, predictions=[Classified(
            message_id=f"m{i}", label="positive", label_id=1, scores={"negative": 0.1, "positive": 0.9},
            confidence=0.9, model_version="v", adapter_version=None, latency_ms=1.0, source=None, lang=None,
            lang_supported=None, received_at=now, classified_at=now) for i in range(3)])
        with capture_logs() as logs:
            sink.write(batch)
            sink.write(batch)
        sink.close()
        assert count(database_url, "select count(*) from predictions") == 3
        warnings = [e for e in logs if e["event"] == "database_writes_by_insert"]
        assert len(warnings) == 1 and "GRANT TEMPORARY ON DATABASE" in warnings[0]["fix"]
    finally:
        drop_role(admin, role)


@pytest.mark.kafka
def test_daemon_runs_with_a_least_privilege_role(broker, topic_names, database_url, tiny_bert_dir):
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    role = least_privilege_role(admin, database_url)
    try:
        url = make_url(database_url).set(username=role).render_as_string(hide_password=False)
        # `sentistream run` checks the schema version first: without that grant it says which to give.
        role_db = DatabaseSettings(url=SecretStr(url))
        with pytest.raises(DatabaseUnavailable, match="GRANT SELECT ON alembic_version"):
            check_database(role_db)
        with admin.connect() as c:
            c.execute(text(f"GRANT SELECT ON alembic_version TO {role}"))
        assert check_database(role_db)
        topics = make_topics(broker, topic_names)
        produce(broker, topics["input"], [tweet(i) for i in range(100)] + [(b"bad", b"{not json")])
        with DaemonThread(make_settings(broker, url, topics, tiny_bert_dir)) as d:
            assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 100
                            and count(database_url, "select count(*) from dead_letters") >= 1
                            or not d.thread.is_alive(), timeout=60)
            assert d.thread.is_alive(), repr(d.error)
            assert d.stop() == 0
        assert count(database_url, "select count(distinct message_id) from predictions") == 100
        # ...and that role can do nothing else.
        eng = create_engine(url)
        for sql in ("select text from predictions", "select original from dead_letters",
                    "update predictions set label = 'x'",
                    "delete from dead_letters", "truncate predictions", "create table t (i int)",
                    "select count(*) from labels"):
            with eng.connect() as c, pytest.raises(Exception, match="permission denied"):
                c.execute(text(sql))
        eng.dispose()
    finally:
        drop_role(admin, role)
