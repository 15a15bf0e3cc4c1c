"""Label import: every bad row rejected with its reason, every good row written, nothing else lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from schemas.cli import main
from schemas.db import LabelRow, PredictionRow, make_engine
from training.labels import import_file, load_examples
from training.readers import read_labeled, split, tweeteval_labels

LABELS = ("negative", "positive")


def _labels(engine) -> dict[str, tuple[str, str | None, str]]:
    with engine.connect() as c:
        return {r.message_id: (r.label, r.text, r.labeled_by) for r in c.execute(select(LabelRow.__table__))}


def _prediction(engine, message_id: str, text: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(PredictionRow.__table__.insert().values(
            message_id=message_id, text=text, label="positive", label_id=1, scores={"positive": 1.0},
            confidence=1.0, model_version="m", adapter_version=None, topic="in", partition=0, offset=0,
            latency_ms=1.0, received_at=now, classified_at=now))


def test_jsonl_bad_rows_rejected_with_reasons(database_url, tmp_path):
    engine = make_engine(database_url)
    _prediction(engine, "m-known", "a message the daemon already classified")
    rows = [
        {"id": "m1", "text": "great film", "label": "positive"},
        {"id": "m2", "text": "awful", "label": 0},
        {"id": "m3", "text": "meh", "label": "sarcastic"},        # unknown label
        {"id": "m4", "text": "   ", "label": "positive"},          # empty text
        {"id": "m-unknown", "label": "negative"},                   # unknown id, no text
        {"id": "m-known", "label": "NEGATIVE", "labeled_by": "ana"},  # known id: text comes from predictions
        {"id": "m5", "text": "fine", "label": 7},                   # index out of range
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")
    lines.insert(5, "[1, 2]")
    f = tmp_path / "labels.jsonl"
    f.write_text("\n".join(lines) + "\n")

    res = import_file(engine, f, LABELS, labeled_by="import")

    assert res.written == 3
    reasons = {r.line: r.reason for r in res.rejected}
    assert reasons == {
        3: "unknown label 'sarcastic'; expected one of ['negative', 'positive'] or 0..1",
        4: "invalid JSON: Expecting property name enclosed in double quotes",
        5: "empty text",
        6: "not a JSON object",
        7: "unknown message id 'm-unknown' and no text",
        9: "unknown label '7'; expected one of ['negative', 'positive'] or 0..1",
    }
    assert _labels(engine) == {"m1": ("positive", "great film", "import"), "m2": ("negative", "awful", "import"),
                               "m-known": ("negative", None, "ana")}
    examples, watermark = load_examples(engine, LABELS)
    assert {e.message_id: e.text for e in examples}["m-known"] == "a message the daemon already classified"
    assert watermark >= 3
    engine.dispose()


def test_reimport_updates_instead_of_duplicating(database_url, tmp_path):
    engine = make_engine(database_url)
    f = tmp_path / "a.csv"
    f.write_text('message_id,text,label\nx1,"good, really",positive\nx2,bad,negative\n')
    assert import_file(engine, f, LABELS, labeled_by="bob").written == 2
    f.write_text("message_id,text,label\nx1,\"good, really\",negative\nx3,,positive\nx4,ok,positive,extra\n")
    res = import_file(engine, f, LABELS, labeled_by="bob")
    assert res.written == 1
    assert [(r.line, r.reason) for r in res.rejected] == [
        (3, "unknown message id 'x3' and no text"), (4, "4 fields, header has 3")]
    assert _labels(engine) == {"x1": ("negative", "good, really", "bob"), "x2": ("negative", "bad", "bob")}
    engine.dispose()


def test_sst2_and_tweeteval_layouts(tmp_path):
    sst = tmp_path / "train.tsv"
    sst.write_text("sentence\tlabel\nit 's a \"charming\" journey . \t1\nbleak \t0\n\t1\n")
    good, bad = split(list(read_labeled(sst, LABELS)))
    assert [(e.text, e.label) for e in good] == [('it \'s a "charming" journey .', "positive"), ("bleak", "negative")]
    assert [(b.line, b.reason) for b in bad] == [(4, "empty text")]
    assert good[0].message_id.startswith("sha1:")

    (tmp_path / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    (tmp_path / "val_text.txt").write_text("@user so happy today \nmeh \n")
    (tmp_path / "val_labels.txt").write_text("2\n1\n")
    labels = tweeteval_labels(tmp_path / "val_text.txt")
    assert labels == ("negative", "neutral", "positive")
    good, bad = split(list(read_labeled(tmp_path / "val_text.txt", labels)))
    assert [(e.text, e.label) for e in good] == [("@user so happy today", "positive"), ("meh", "neutral")]
    assert not bad


def test_real_dataset_files_parse_completely(data_dir):
    good, bad = split(list(read_labeled(data_dir / "sst2" / "dev.tsv", LABELS)))
    assert (len(good), len(bad)) == (872, 0)
    f = data_dir / "tweeteval_sentiment" / "test_text.txt"
    good, bad = split(list(read_labeled(f, tweeteval_labels(f))))
    assert (len(good), len(bad)) == (12284, 0)
    assert {e.label for e in good} == {"negative", "neutral", "positive"}


def test_cli_import_reports_rejected_rows(database_url, tmp_path, monkeypatch, capsys):
    f = tmp_path / "l.tsv"
    f.write_text("text\tlabel\nnice\tpositive\nugh\tangry\n")
    monkeypatch.setenv("SENTISTREAM_DATABASE__URL", database_url)
    assert main(["labels", "import", str(f)]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out) == {"file": str(f), "written": 1, "rejected": 1}
    # Each rejected row is a log event on stderr (JSON: stderr is not a terminal).
    rejected = [json.loads(line) for line in cap.err.splitlines() if '"label_rejected"' in line]
    assert [(r["file"], r["line"]) for r in rejected] == [(str(f), 3)]
    assert rejected[0]["reason"].startswith("unknown label 'angry'")
