"""Poisoned imports and poisoned rows: an import is refused whole with one line, and a bad
row already in the file (an older version's import, a hand edit) never stops reading:
its bad values are replaced, unusable rows skipped, each noted in Store.problems."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
from pathlib import Path

import pytest

from taskdiv_chat.store import DB_NAME, Store, StoreError
from tests.support import run_cli

GOOD = {
    "format": "taskdiv-chat/conversation", "version": 1, "title": "rain", "created": 1_700_000_000.0,
    "updated": 1_700_000_100.0, "archived": False, "messages": [
        {"n": 1, "role": "user", "parent": None, "text": "Write about rain", "created": 1_700_000_000.0,
         "updated": 1_700_000_000.0, "category": {"letter": "G", "confidence": 0.9, "method": "local", "detail": ""},
         "category_override": None, "active_variant": 2, "selected": 1},
        {"n": 2, "role": "assistant", "parent": 1, "text": "Rain falls.", "created": 1_700_000_001.0,
         "updated": 1_700_000_002.0, "category": None, "status": "done", "finish_reason": "stop", "error": None,
         "strategy": "first", "backend": "x", "model": "m", "params": {}, "usage": None, "timings": None,
         "metrics": None},
    ]}


def poisoned(change) -> dict:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


POISONS = {
    "letter as an integer": lambda d: d["messages"][0]["category"].update(letter=5),
    "unknown letter": lambda d: d["messages"][0]["category"].update(letter="Z"),
    "confidence as text": lambda d: d["messages"][0]["category"].update(confidence="high"),
    "confidence 7": lambda d: d["messages"][0]["category"].update(confidence=7),
    "category a list": lambda d: d["messages"][0].update(category=[1, 2]),
    "override as an integer": lambda d: d["messages"][0].update(category_override=7),
    "override unknown": lambda d: d["messages"][0].update(category_override="Q"),
    "updated 1e20": lambda d: d.update(updated=1e20),
    "message updated 1e20": lambda d: d["messages"][1].update(updated=1e20),
    "negative time": lambda d: d.update(created=-5.0),
    "huge integer time": lambda d: d["messages"][0].update(created=10**30),
    "huge id": lambda d: (d["messages"][0].update(n=10**30), d["messages"][1].update(parent=10**30)),
    "huge selected": lambda d: d["messages"][0].update(selected=10**30),
    "id as text": lambda d: d["messages"][0].update(n="1"),
    "id as a float": lambda d: d["messages"][0].update(n=1.0),
    "archived as 1": lambda d: d.update(archived=1),
    "text a number": lambda d: d["messages"][1].update(text=42),
    "lone surrogate in text": lambda d: d["messages"][0].update(text="bad \ud800 half"),
    "lone surrogate in a key": lambda d: d["messages"][1].update(params={"\udc00": 1}),
    "huge integer in usage": lambda d: d["messages"][1].update(usage={"prompt_tokens": 10**40}),
    "Infinity in metrics": lambda d: d["messages"][1].update(metrics={"score": float("inf")}),
    "NaN time": lambda d: d.update(updated=float("nan")),
    "deep metrics": lambda d: d["messages"][1].update(metrics=json.loads('{"a":' * 100 + "1" + "}" * 100)),
    "status unknown": lambda d: d["messages"][1].update(status="exploded"),
}


@pytest.mark.parametrize("name", sorted(POISONS))
def test_poisoned_import_is_refused_whole(tmp_path, name):
    with Store(tmp_path / "h.sqlite3") as store:
        with pytest.raises(StoreError) as caught:
            store.import_json(poisoned(POISONS[name]))
        assert "not a valid export" in str(caught.value) or "not a taskdiv-chat conversation export" in str(
            caught.value)
        assert store.list_conversations() == []  # all or nothing
        store.import_json(copy.deepcopy(GOOD))  # the store is fine afterwards
        assert [c.title for c in store.list_conversations()] == ["rain"]


@pytest.mark.parametrize("raw", [
    json.dumps(GOOD).replace('"updated": 1700000100.0', '"updated": Infinity'),
    json.dumps(GOOD).replace('"updated": 1700000100.0', '"updated": NaN'),
    json.dumps(GOOD).replace('"text": "Rain falls."', '"text": "Rain \\ud800"'),
    json.dumps(GOOD).replace('"selected": 1', '"selected": ' + "9" * 5000),
    "[" * 50_000 + "]" * 50_000,
    json.dumps(poisoned(POISONS["letter as an integer"])),
    json.dumps(poisoned(POISONS["updated 1e20"])),
])
def test_poisoned_import_file_is_one_line_through_the_cli(tmp_path, raw):
    path = tmp_path / "poison.json"
    path.write_text(raw, encoding="utf-8")
    out = run_cli("import", str(path))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert run_cli("history").stderr.strip() == "no conversations yet"


def test_import_from_a_fifo_is_one_line(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    out = run_cli("import", str(fifo), timeout=20)
    assert out.returncode == 1 and "not a regular file" in out.stderr


# --- bad rows already in the file -------------------------------------------------------------


def poison_rows(path: Path) -> None:
    """What an older version's unchecked import could leave behind, written straight into SQLite."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE conversations SET updated = 1e999, created = -3")  # Infinity, before 1970
    db.execute("UPDATE messages SET category = '{\"letter\": 5, \"confidence\": 0.9}', updated = 1e20 "
               "WHERE role = 'user'")
    db.execute("UPDATE messages SET metrics = 'not json', status = 'done', usage = '[1, 2]' WHERE role = 'assistant'")
    db.execute("INSERT INTO messages (conversation_id, role, parent_id, text, created, updated) "
               "VALUES (1, 'user', 2, X'FF00', 0, 0)")  # a follow-up turn whose text is bytes
    db.close()


def test_bad_rows_are_repaired_or_skipped_with_a_note(tmp_path):
    path = tmp_path / "h.sqlite3"
    with Store(path) as store:
        cid = store.import_json(copy.deepcopy(GOOD))
    poison_rows(path)
    with Store(path) as store:
        [summary] = store.list_conversations()
        assert (summary.id, summary.created, summary.updated) == (cid, 0.0, 0.0)
        conv = store.load_conversation(cid)
        [turn] = conv.turns
        assert turn.user.text == "Write about rain" and turn.user.category is None and turn.user.letter is None
        assert turn.active.text == "Rain falls." and turn.active.metrics is None and turn.active.usage is None
        assert "Rain falls." in store.export_markdown(cid)
        assert store.export_json(cid)["messages"][1]["text"] == "Rain falls."
        problems = "\n".join(store.problems)
        for expected in ("updated time inf is not a time", "letter 5 is not one of", "metrics is not a JSON object",
                         "usage is not a JSON object", "has no usable role or text; skipped"):
            assert expected in problems, expected


def test_history_and_export_cli_survive_bad_rows_and_say_so():
    path = Path(os.environ["TASKDIV_DATA_DIR"]) / DB_NAME
    with Store(path) as store:
        store.import_json(copy.deepcopy(GOOD))
    poison_rows(path)
    listed = run_cli("history")
    assert listed.returncode == 0, listed.stderr
    assert "rain" in listed.stdout and "history database: conversation 1" in listed.stderr
    exported = run_cli("export", "1")
    assert exported.returncode == 0 and "Rain falls." in exported.stdout
    assert "Traceback" not in listed.stderr + exported.stderr
