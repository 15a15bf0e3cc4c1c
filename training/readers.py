"""Read labeled examples from CSV / TSV / JSONL files and the TweetEval split layout.

Every row either becomes an :class:`Example` or a :class:`Rejected` with its line and reason,
so an import never silently drops data.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.errors import DatasetError, LabelError

TEXT_COLUMNS = ("text", "sentence", "document", "tweet", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment")
ID_COLUMNS = ("message_id", "id", "index")


@dataclass(frozen=True)
class Example:
    message_id: str
    text: str | None  # None: the text is looked up in predictions by message id
    label: str
    labeled_by: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    raw: str


def text_id(text: str) -> str:
    """Stable id for rows without one: identical texts share an id, so they land in one split."""
    return "sha1:" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:20]


def normalize_label(raw: object, labels: Sequence[str]) -> str:
    """A label name (case-insensitive) or a class index; raises LabelError with what is allowed."""
    s = str(raw).strip()
    if s == "" or raw is None:
        raise LabelError("empty label")
    by_name = {n.lower(): n for n in labels}
    if s.lower() in by_name:
        return by_name[s.lower()]
    if s.lstrip("-").isdigit():
        i = int(s)
        if 0 <= i < len(labels):
            return labels[i]
    raise LabelError(f"unknown label {s!r}; expected one of {list(labels)} or 0..{len(labels) - 1}")


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {c.lower().strip(): c for c in columns if c is not None}
    return next((lower[n] for n in names if n in lower), None)


def _row(
    line: int, rec: dict, text_col: str | None, label_col: str, id_col: str | None, labels: Sequence[str]
) -> Example | Rejected:
    raw = json.dumps(rec, ensure_ascii=False)[:500]
    text = rec.get(text_col) if text_col else None
    if text is not None and not isinstance(text, str):
        return Rejected(line, "text is not a string", raw)
    mid = rec.get(id_col) if id_col else None
    mid = str(mid).strip() if mid is not None and str(mid).strip() else None
    # A text that is there but blank is an error; a missing one (or an empty CSV cell next to an
    # id) means "look the text up by message id".
    if text is not None and not text.strip() and (text != "" or mid is None):
        return Rejected(line, "empty text", raw)
    text = text.strip() if text else None
    if mid is None and not text:
        return Rejected(line, "no text and no message id", raw)
    try:
        label = normalize_label(rec.get(label_col), labels)
    except LabelError as e:
        return Rejected(line, str(e), raw)
    by = rec.get("labeled_by")
    return Example(mid or text_id(text), text or None, label, str(by) if by else None, line)


def _read_delimited(path: Path, labels: Sequence[str], delimiter: str) -> Iterator[Example | Rejected]:
    with path.open(newline="", encoding="utf-8") as f:
        # QUOTE_NONE for TSV: SST-2 and NSMC contain bare quote characters inside sentences.
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.DictReader(f, delimiter=delimiter, quoting=quoting)
        cols = reader.fieldnames or []
        text_col, label_col, id_col = _pick(cols, TEXT_COLUMNS), _pick(cols, LABEL_COLUMNS), _pick(cols, ID_COLUMNS)
        if label_col is None or (text_col is None and id_col is None):
            raise DatasetError(
                f"{path}: header {cols} needs a label column ({'/'.join(LABEL_COLUMNS)}) and a text "
                f"({'/'.join(TEXT_COLUMNS)}) or id ({'/'.join(ID_COLUMNS)}) column"
            )
        for rec in reader:
            line = reader.line_num
            if None in rec:
                yield Rejected(line, f"{len(cols) + len(rec[None])} fields, header has {len(cols)}", str(rec)[:500])
                continue
            yield _row(line, rec, text_col, label_col, id_col, labels)


def _read_jsonl(path: Path, labels: Sequence[str]) -> Iterator[Example | Rejected]:
    with path.open(encoding="utf-8") as f:
        for line, s in enumerate(f, 1):
            if not s.strip():
                continue
            try:
                rec = json.loads(s)
            except json.JSONDecodeError as e:
                yield Rejected(line, f"invalid JSON: {e.msg}", s[:500])
                continue
            if not isinstance(rec, dict):
                yield Rejected(line, "not a JSON object", s[:500])
                continue
            yield _row(line, rec, _pick(rec, TEXT_COLUMNS), _pick(rec, LABEL_COLUMNS) or "label",
                       _pick(rec, ID_COLUMNS), labels)


def _read_tweeteval(text_path: Path, labels: Sequence[str]) -> Iterator[Example | Rejected]:
    label_path = text_path.with_name(text_path.name.replace("_text.txt", "_labels.txt"))
    if not label_path.is_file():
        raise DatasetError(f"{text_path}: the matching labels file {label_path.name} is missing")
    texts = text_path.read_text(encoding="utf-8").split("\n")
    golds = label_path.read_text(encoding="utf-8").split("\n")
    texts, golds = texts[:-1] if texts[-1] == "" else texts, golds[:-1] if golds[-1] == "" else golds
    if len(texts) != len(golds):
        raise DatasetError(f"{text_path}: {len(texts)} texts but {len(golds)} labels in {label_path.name}")
    for line, (t, g) in enumerate(zip(texts, golds, strict=True), 1):
        yield _row(line, {"text": t, "label": g}, "text", "label", None, labels)


def read_labeled(path: Path, labels: Sequence[str]) -> Iterator[Example | Rejected]:
    """Rows of a labels file; the layout comes from the file name and extension."""
    path = Path(path)
    if path.is_dir() and (path / "train_text.txt").is_file():
        path = path / "train_text.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith("_text.txt"):
        return _read_tweeteval(path, labels)
    if name.endswith((".jsonl", ".ndjson")):
        return _read_jsonl(path, labels)
    if name.endswith((".tsv", ".txt")):
        return _read_delimited(path, labels, "\t")
    if name.endswith(".csv"):
        return _read_delimited(path, labels, ",")
    raise DatasetError(f"{path}: unknown layout; use .csv, .tsv, .jsonl or a TweetEval *_text.txt file")


def split(rows: Sequence[Example | Rejected]) -> tuple[list[Example], list[Rejected]]:
    good = [r for r in rows if isinstance(r, Example)]
    bad = [r for r in rows if isinstance(r, Rejected)]
    return good, bad


def tweeteval_labels(path: Path) -> tuple[str, ...] | None:
    """Label names from TweetEval's mapping.txt next to the file, when present."""
    m = Path(path).parent / "mapping.txt" if Path(path).is_file() else Path(path) / "mapping.txt"
    if not m.is_file():
        return None
    pairs = [ln.split("\t") for ln in m.read_text().splitlines() if ln.strip()]
    return tuple(name.strip() for _, name in sorted(pairs, key=lambda p: int(p[0])))
