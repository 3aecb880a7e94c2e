"""`taskdiv-chat history`, `export` and `import` against a real store in the data dir."""

from __future__ import annotations

import argparse
import json

import pytest

from taskdiv_chat.commands import store as store_commands
from taskdiv_chat.store import Store


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="taskdiv-chat")
    store_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def chats():
    with Store() as s:  # the default path: TASKDIV_DATA_DIR from conftest
        poems = s.create_conversation("Poems")
        t = s.add_user_turn(poems, "A haiku about herons, please", None, {"letter": "G", "method": "llm"})
        for text in ("Grey heron stands still", "Herons fish at dawn"):
            w = s.start_variant(t, strategy="anchored-icr", backend="local", model="m", params={})
            w.append(text)
            w.finish("stop")
        trip = s.create_conversation("Trip")
        s.add_user_turn(trip, "Plan two days in Porto", None)
        old = s.create_conversation("Old stuff")
        s.archive(old)
    return {"poems": poems, "trip": trip, "old": old}


def test_history_lists_recent_conversations(chats, capsys):
    assert run("history") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "UPDATED", "TURNS", "TITLE"]
    assert [line.split()[-1] for line in lines[1:]] == ["Trip", "Poems"]
    assert run("history", "--all") == 0
    assert "Old stuff  [archived]" in capsys.readouterr().out


def test_history_search_prints_highlighted_snippets(chats, capsys):
    assert run("history", "--search", "heron") == 0
    out = capsys.readouterr().out
    assert f"{chats['poems']}  Poems  (you #" in out
    assert "A haiku about [herons], please" in out and "Grey [heron] stands still" in out
    assert run("history", "--search", "zebra") == 1
    assert "nothing matches 'zebra'" in capsys.readouterr().err


def test_export_markdown_and_json_then_import_round_trip(chats, tmp_path, capsys):
    assert run("export", str(chats["poems"])) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Poems") and "### Answer 2 of 2 (shown)" in md and "Herons fish at dawn" in md

    out = tmp_path / "poems.json"
    assert run("export", str(chats["poems"]), "-o", str(out)) == 0  # .json: format from the suffix
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["title"] == "Poems" and len(exported["messages"]) == 3

    assert run("import", str(out)) == 0
    new_id = int(capsys.readouterr().out.split("conversation ")[1].split(":")[0])
    again = tmp_path / "again.json"
    assert run("export", str(new_id), "--format", "json", "-o", str(again)) == 0
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def test_bad_input_gives_a_clear_message_and_changes_nothing(chats, tmp_path, capsys):
    assert run("export", "999") == 1
    assert "no conversation 999 (see `taskdiv-chat history`)" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert run("import", str(bad)) == 1
    assert "is not JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"title": "x"}), encoding="utf-8")
    assert run("import", str(bad)) == 1
    assert "not a taskdiv-chat conversation export" in capsys.readouterr().err
    assert run("import", str(tmp_path / "missing.json")) == 1
    assert "cannot read" in capsys.readouterr().err
    assert run("export", str(chats["poems"]), "-o", str(tmp_path / "no" / "such" / "dir.md")) == 1
    assert "cannot write" in capsys.readouterr().err
    with Store() as s:
        assert len(s.list_conversations(include_archived=True)) == 3
