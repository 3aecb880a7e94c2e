"""`taskdiv-chat compare` end to end: three loopback servers as the models, the real store."""

from __future__ import annotations

import io
import json

import pytest

from taskdiv_chat.cli import main
from taskdiv_chat.store import Store
from tests.support import write_config
from tests.support.fake_server import Reply
from tests.test_compare import classify_and_judge, model_servers

PARIS = "Paris. France has had its capital there since the Middle Ages,\nwith the government seated in the city."
PARIS_TOO = "Paris, without any doubt: the national assembly and the president sit in that city."


def config(fake_server, servers, extra: str = "") -> None:
    """The loopback `fake` server classifies and judges; alpha, beta, gamma are the compared models."""
    fake_server.responder = classify_and_judge("A")
    text = (f'default_backend = "fake"\n[classify]\nmethod = "llm"\n[judge]\nmethod = "llm"\n'
            f'[backends.fake]\nbase_url = "{fake_server.base_url}"\nmodel = "test-model"\nmax_retries = 0\n')
    for i, (name, server) in enumerate(zip(["alpha", "beta", "gamma"], servers)):
        text += f'[backends.{name}]\nbase_url = "{server.base_url}"\nmodel = "model-{i}"\nmax_retries = 0\n'
    write_config(text + extra)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def three_models():
    return model_servers(Reply(PARIS, chunk_delay=0.01), Reply(PARIS_TOO, chunk_delay=0.01),
                         Reply("Lyon is the one people name most", fault="disconnect", fault_after=3))


def test_compare_streams_labelled_lines_groups_backends_and_shows_the_failure_in_place(fake_server, capsys):
    with three_models() as servers:
        config(fake_server, servers)
        code = main(["compare", "What is the capital of France?", "--backends", "alpha,beta,gamma"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "alpha │ Paris. France has had its capital there since the Middle Ages," in lines
    assert "alpha │ with the government seated in the city." in lines
    assert f"beta │ {PARIS_TOO}" in lines
    assert "gamma │ Lyon is the" in lines and any(line.startswith("gamma │ ✗ ") for line in lines)
    assert "category: A Well-Specified Singular Objective (llm)" in lines
    assert "  group 1: alpha (model-0), beta (model-1)" in lines
    assert "group 2" not in out
    assert any(line.startswith("  failed: gamma (model-2): ") for line in lines)
    assert "verdict: GOOD  2 models · 1 functionally distinct: " in out
    with Store() as store:  # recorded: the three answers are variants of one turn, with backend and model
        turn = store.load_conversation(store.list_conversations()[0].id).turns[0]
    assert sorted((v.backend, v.model, bool(v.error)) for v in turn.variants) == [
        ("alpha", "model-0", False), ("beta", "model-1", False), ("gamma", "model-2", True)]


def test_compare_json_gives_answers_groups_and_verdict(fake_server, capsys):
    with model_servers(Reply(PARIS), Reply("Lyon. Many travellers mistake this silk town on the Rhone for the "
                                           "seat of power, so here it is."), Reply(PARIS_TOO)) as servers:
        config(fake_server, servers, '[compare]\nbackends = ["alpha", "beta", "gamma"]\nn = 2\n')
        code = main(["compare", "What is the capital of France?", "--json", "--no-save"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["n"] == 2 and data["backends"] == ["alpha", "beta", "gamma"]
    assert [(a["index"], a["backend"], a["model"]) for a in data["answers"]] == [
        (0, "alpha", "model-0"), (1, "alpha", "model-0"), (2, "beta", "model-1"), (3, "beta", "model-1"),
        (4, "gamma", "model-2"), (5, "gamma", "model-2")]
    assert data["answers"][2]["text"].startswith("Lyon.") and data["answers"][0]["error"] is None
    assert [sorted({a["backend"] for a in g}) for g in data["groups"]] == [["alpha", "gamma"], ["beta"]]
    assert data["verdict"]["status"] == "warning" and data["verdict"]["badge_text"] == "3 models · 2 functionally distinct"
    assert data["category"]["letter"] == "A"
    with Store() as store:
        assert store.list_conversations() == []  # --no-save


def test_compare_on_a_terminal_shows_no_escape_sequence_and_stores_the_exact_text(fake_server, monkeypatch):
    hostile = "Paris\x1b]0;owned\x07 is\x1b[2J the capital, said the server that tried to clear the screen."
    with model_servers(Reply(hostile), Reply(PARIS_TOO)) as servers:
        config(fake_server, servers)
        terminal = Terminal()
        monkeypatch.setattr("sys.stdout", terminal)
        code = main(["compare", "What is the capital of France?", "--backends", "alpha,beta"])
    assert code == 0
    assert "\x1b" not in terminal.getvalue() and "\x07" not in terminal.getvalue()
    assert "alpha │ Paris is the capital" in terminal.getvalue()
    with Store() as store:
        turn = store.load_conversation(store.list_conversations()[0].id).turns[0]
    assert hostile in [v.text for v in turn.variants]


def test_compare_without_backends_or_with_an_unknown_one_says_so(fake_server, capsys):
    with model_servers(Reply(PARIS)) as servers:
        config(fake_server, servers)
        assert main(["compare", "hi"]) == 2
        assert "no backends to compare" in capsys.readouterr().err
        assert main(["compare", "hi", "--backends", "alpha,nope"]) == 2
        assert "unknown backend 'nope'" in capsys.readouterr().err


def test_compare_exits_1_when_every_backend_failed(fake_server, capsys):
    with model_servers(Reply(error=(500, "down")), Reply(error=(500, "down"))) as servers:
        config(fake_server, servers)
        code = main(["compare", "What is the capital of France?", "--backends", "alpha,beta"])
    out, err = capsys.readouterr()
    assert code == 1 and "every backend failed" in err
    assert out.count("✗") == 2


@pytest.mark.parametrize("value", ["", ","])
def test_compare_refuses_an_empty_backend_list(value, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "hi", "--backends", value])
    assert "backend names separated by commas" in capsys.readouterr().err
