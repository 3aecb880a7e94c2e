"""`taskdiv-chat classify` through the real console entry point (local model and loopback server)."""

from __future__ import annotations

import json
import re

import pytest

from tests import support
from tests.support import fake_config
from tests.support.fake_server import Reply


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> str:
    """One cache dir for this module's runs: the exemplar vectors are embedded once, not per run."""
    return str(tmp_path_factory.mktemp("classify-cache"))


def run_cli(*args: str, stdin: str | None = None, cache: str | None = None, timeout: float = 180):
    """`taskdiv-chat classify ARGS...` in a child process."""
    return support.run_cli("classify", *args, stdin=stdin, env={"TASKDIV_CACHE_DIR": cache} if cache else None,
                           timeout=timeout)


def test_one_prompt_prints_letter_name_confidence_and_method(shared_cache):
    out = run_cli("Write a limerick about a goat who eats socks.", "--method", "local", cache=shared_cache)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert re.fullmatch(r"G  Creative Writing  \(confidence (0\.\d\d|1\.00), local\)", first), first


def test_jsonl_adds_fields_keeps_everything_else_and_reports_bad_lines(tmp_path, shared_cache):
    source = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"id": 1, "prompt": "Roll a twenty-sided die."}),
             "this line is not JSON",
             "",
             json.dumps({"id": 3, "prompt": "Should I learn the piano or the guitar?", "category": "H"}),
             json.dumps({"id": 4, "text": "no prompt field here"})]
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.jsonl"
    out = run_cli("--jsonl", str(source), "-o", str(target), "--method", "local", cache=shared_cache)
    assert out.returncode == 1  # some lines could not be classified
    assert "prompts.jsonl:2: not JSON" in out.stderr and "prompts.jsonl:5: no 'prompt'" in out.stderr
    written = target.read_text().splitlines()
    assert len(written) == len(lines)
    assert written[1:3] == lines[1:3] and written[4] == lines[4]  # copied unchanged
    die, advice = json.loads(written[0]), json.loads(written[3])
    assert (die["id"], die["category"], die["method"]) == (1, "C", "local")
    assert 0 < die["confidence"] <= 1
    assert (advice["category_input"], advice["category"]) == ("H", "H")  # the given label is kept


def test_llm_method_asks_the_configured_backend(fake_server):
    fake_server.responder = lambda body: Reply("**D**")
    fake_config(fake_server)
    out = run_cli("What is 17 times 23?", "--method", "llm", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["letter"], result["method"], result["name"]) == ("D", "llm", "Problem-Solving Objective")
    assert fake_server.requests[0]["temperature"] == 0


def test_jsonl_from_stdin_to_stdout_with_llm(fake_server):
    answers = {"Flip a coin.": "C", "Tell me a joke.": "G. Creative Writing"}
    fake_server.responder = lambda body: Reply(next(a for p, a in answers.items()
                                                    if p in body["messages"][-1]["content"]))
    fake_config(fake_server)
    stdin = "".join(json.dumps({"prompt": p}) + "\n" for p in answers)
    out = run_cli("--jsonl", "-", "--method", "llm", stdin=stdin)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["prompt"], r["category"], r["method"]) for r in rows] == [
        ("Flip a coin.", "C", "llm"), ("Tell me a joke.", "G", "llm")]


@pytest.mark.parametrize("args, message", [
    (["-o", "x.jsonl", "hello"], "-o/--output goes with --jsonl FILE"),
    (["--jsonl", "missing.jsonl"], "cannot read missing.jsonl"),
    (["hello", "--jsonl", "x.jsonl"], "either a PROMPT or --jsonl FILE"),
    ([], "nothing to classify"),
])
def test_bad_invocations_explain_themselves(args, message):
    out = run_cli(*args, stdin="")
    assert out.returncode == 1
    assert message in out.stderr
