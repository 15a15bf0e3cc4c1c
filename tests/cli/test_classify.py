"""``sentistream classify`` is a Unix filter: one JSON line per input on stdout, in order, the daemon's
dead-letter reasons for inputs it cannot classify, logs on stderr only."""

from __future__ import annotations

import queue
import subprocess
import threading

from schemas.messages import EMPTY_TEXT, OVERSIZED, UNDECODABLE
from schemas.settings import BatchSettings
from tests.cli.runner import COMMAND, clean_env, json_lines, sentistream

LABELS = {"negative", "positive"}
BATCH = BatchSettings()


def _lines_of(pipe, out: queue.Queue) -> None:
    for line in pipe:
        out.put(line)
    out.put(None)


def test_pipe_streams_one_json_line_per_input_line(tmp_path):
    first = [b"I love this film, it is wonderful", b"", b"   ", b"worst service ever, I hate it",
             b"x" * 21_000]
    first += [f"plain review number {i}".encode() for i in range(BATCH.max_size - len(first))]
    rest = [b"not utf-8 \xff\xfe here", b"", b"the best day of my life"]
    stderr = (tmp_path / "stderr").open("w+b")
    proc = subprocess.Popen([*COMMAND, "classify"], env=clean_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr)
    got: queue.Queue = queue.Queue()
    threading.Thread(target=_lines_of, args=(proc.stdout, got), daemon=True).start()
    try:
        # A full batch is answered while stdin is still open: the filter streams.
        proc.stdin.write(b"".join(line + b"\n" for line in first))
        proc.stdin.flush()
        rows = [got.get(timeout=180) for _ in first]
        proc.stdin.write(b"".join(line + b"\n" for line in rest))
        proc.stdin.close()
        rows += [got.get(timeout=60) for _ in rest]
        assert got.get(timeout=60) is None  # nothing more than one line per input
        assert proc.wait(60) == 1  # some inputs got an error line
    finally:
        proc.kill()
    stderr.seek(0)
    err = stderr.read().decode()
    assert "Traceback" not in err
    inputs = first + rest
    rows = json_lines(b"".join(rows))
    assert [r["message_id"] for r in rows] == [str(i) for i in range(len(inputs))]
    errors = {int(r["message_id"]): r["error"] for r in rows if "error" in r}
    assert sorted(errors) == [1, 2, 4, BATCH.max_size, BATCH.max_size + 1]
    assert errors[1].startswith(f"{EMPTY_TEXT}: ") and errors[2].startswith(f"{EMPTY_TEXT}: ")
    assert errors[4] == f"{OVERSIZED}: text has 21000 characters, limit is {BATCH.max_text_chars}"
    assert errors[BATCH.max_size].startswith(f"{UNDECODABLE}: ")
    classified = [r for r in rows if "error" not in r]
    assert len(classified) == len(inputs) - 5 and all(r["label"] in LABELS for r in classified)
    label = {int(r["message_id"]): r["label"] for r in classified}
    assert (label[0], label[3], label[len(inputs) - 1]) == ("positive", "negative", "positive")
    # Logs only on stderr, as JSON lines (log_format auto: stderr is not a terminal), no message text.
    logs = json_lines(err)
    assert "model_loaded" in {e["event"] for e in logs}
    assert "wonderful" not in err and "plain review" not in err


def test_arguments_with_an_empty_one(tmp_path):
    proc = sentistream("classify", "I love this", "", "worst service ever", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert [r["message_id"] for r in rows] == ["0", "1", "2"]
    assert rows[1] == {"message_id": "1", "error": f"{EMPTY_TEXT}: text is empty or whitespace"}
    assert (rows[0]["label"], rows[2]["label"]) == ("positive", "negative")
    assert "model_loaded" in {e["event"] for e in json_lines(proc.stderr)}


def test_help_documents_the_exit_status():
    proc = sentistream("classify", "--help")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert "exit status: 0 every input classified; 1 some inputs got an error line" in out
    assert EMPTY_TEXT in out and OVERSIZED in out
