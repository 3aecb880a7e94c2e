"""What an installed wheel needs beyond the code: the bundled themes, and clear words for a missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

from taskdiv_chat.config import bundled_themes_dir
from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_themes_are_the_repositorys_themes():
    """taskdiv_chat/themes (what the wheel ships) is the top-level themes/, not a copy that can drift."""
    shipped = {p.name: p.read_bytes() for p in bundled_themes_dir().glob("*.toml")}
    source = {p.name: p.read_bytes() for p in (ROOT / "themes").glob("*.toml")}
    assert shipped and shipped == source


def test_locate_lists_the_bundled_themes_and_the_model():
    out = run_cli("locate")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("bundled themes:"))
    assert line.startswith("bundled themes: midnight, paper, taskdiv-dark, taskdiv-light  (")
    assert any(line.startswith("model:  ") for line in out.stdout.splitlines())


def test_bench_report_without_matplotlib_says_how_to_get_the_chart(tmp_path, monkeypatch):
    from taskdiv_chat.diversity.bench_report import NO_CHART, write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `bench` extra were not installed
    (tmp_path / "chart.png").write_bytes(b"an older run's chart")
    rows = [{"prompt_id": "e1", "category": "E", "strategy": "temperature", "unique": 2}]
    meta = {"strategies": ["temperature"], "n": 2, "backend": "fake", "model": "m", "judges": ["llm"],
            "last_run": {"sets": 1, "seconds": 1.0}}
    report = write_report(rows, tmp_path, meta).read_text()
    assert f"_{NO_CHART}_" in report and "pip install 'taskdiv-chat[bench]'" in NO_CHART
    assert not (tmp_path / "chart.png").exists()
