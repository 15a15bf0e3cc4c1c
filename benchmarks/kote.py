"""KOTE (Korean online comments, 44 emotions, multi-label) read as S2's four classes.

Each KOTE row carries the union of five annotators' labels (about 8 per row), so a row rarely names
one emotion. The rule: the six KOTE labels near S2's classes fall into four groups (24 없음 -> 무감정;
5 슬픔 -> 슬픔; 42 기쁨, 40 행복, 28 즐거움/신남 -> 기쁨; 6 화남/분노 -> 분노), and a row is kept when its
labels point to exactly one group, with that group as its class; the other 43 labels are ignored.
Rows with none or with two or more groups are dropped. On val this keeps 429 / 227 / 1305 / 1281
rows (3242 of 5000), on test 366 / 275 / 1344 / 1240 (3225): every class keeps a few hundred rows.
A stricter rule (exactly one of the six label ids) leaves 기쁨 far fewer, since its three ids
usually come together; :func:`rule_counts` prints both.

The data is read where it lies ($SENTISTREAM_DATA_DIR/kote, default ../shared/data), never copied.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.readers import Example

REPO = Path(__file__).resolve().parent.parent
LABELS = ("무감정", "슬픔", "기쁨", "분노")
GROUPS = {24: "무감정", 5: "슬픔", 42: "기쁨", 40: "기쁨", 28: "기쁨", 6: "분노"}


def kote_dir() -> Path:
    return Path(os.environ.get("SENTISTREAM_DATA_DIR", REPO.parent / "shared" / "data")) / "kote"


def one_group(ids: set[int]) -> str | None:
    """The class when the row's labels point to exactly one group, else None (the rule used)."""
    groups = {GROUPS[i] for i in ids if i in GROUPS}
    return groups.pop() if len(groups) == 1 else None


def one_id(ids: set[int]) -> str | None:
    """Stricter, for comparison only: exactly one of the six ids."""
    hit = [i for i in ids if i in GROUPS]
    return GROUPS[hit[0]] if len(hit) == 1 else None


def raw_rows(split: str) -> list[tuple[str, str, set[int]]]:
    """(id, text, label ids) for every row of ``split`` (val or test)."""
    out = []
    with (kote_dir() / f"{split}.tsv").open(encoding="utf-8") as f:
        for line in f:
            rid, text, labels = line.rstrip("\n").split("\t")
            out.append((rid, text, {int(x) for x in labels.split(",")}))
    return out


def read(split: str, rule: Callable[[set[int]], str | None] = one_group) -> list[Example]:
    """The rows ``rule`` keeps, in file order, as training examples (message id ``kote:<id>``)."""
    return [Example(message_id=f"kote:{rid}", text=text, label=label)
            for rid, text, ids in raw_rows(split) if (label := rule(ids)) is not None]


def fixed_sample(examples: Sequence[Example], n: int, seed: int = 0) -> list[Example]:
    """The first ``n`` of a seeded permutation: a smaller n is a prefix of a larger one, so the CLI
    test's 500 rows are the first 500 the benchmark evaluated."""
    order = np.random.default_rng(seed).permutation(len(examples))
    return [examples[i] for i in order[:n]]


def rule_counts() -> dict:
    """Rows kept per class by each rule, per split."""
    return {f"{name}/{split}": {c: Counter(e.label for e in read(split, rule))[c] for c in LABELS}
            for name, rule in (("one_group", one_group), ("one_id", one_id)) for split in ("val", "test")}


if __name__ == "__main__":
    import json

    print(json.dumps(rule_counts(), ensure_ascii=False, indent=2))
