import pytest

from daemon.demo import run_demo

pytestmark = pytest.mark.kafka


def test_demo_streams_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SENTISTREAM_DATA_DIR", raising=False)  # the bundled sample, not SST-2
    assert run_demo(messages=40, workdir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "=== sentistream demo summary ===" in out
    assert "44 sent, 40 classified, 4 dead-lettered" in out
    assert "model            minilm-lora-sst2  adapter minilm-sst2" in out
    assert (tmp_path / "demo.db").is_file()
