"""`sample`, `judge` and `bench` end to end: the loopback server as the model, real files, the real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskdiv_chat.cli import main
from taskdiv_chat.store import Store
from tests import support
from tests.support.fake_server import Reply


def run(argv: list[str]) -> int:
    """What `taskdiv-chat ARGV...` does."""
    return main(argv)


@pytest.fixture
def fake_config(fake_server):
    """The config file (isolated by conftest) makes the loopback server the default backend."""
    support.fake_config(fake_server)
    return fake_server


def story_server(body: dict) -> Reply:
    """Stories for generation requests; the judge says stories 1 and 3 are the same."""
    text = body["messages"][-1]["content"]
    if "functionally equivalent" in text:
        first, second = text.split("Response 1:")[1].split("Response 2:")
        same = "lighthouse" in first and "lighthouse" in second
        return Reply("YES" if same else "NO")
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    stories = ["A lighthouse keeper saves a sailor from the storm and they become friends forever.",
               "A dragon afraid of fire learns from a brave girl to warm her frozen village.",
               "The lighthouse keeper pulls a drowning sailor from the waves; a friendship begins."]
    return Reply(stories[turn % 3])


def test_sample_streams_reports_and_saves(fake_config, capsys):
    fake_config.responder = story_server
    assert run(["sample", "Write a short story.", "-n", "3", "--category", "G", "--strategy", "general-icr",
                "--judge", "llm"]) == 0
    out = capsys.readouterr().out
    assert "category: G Creative Writing" in out and "strategy: general-icr" in out
    assert out.index("── answer 1 ──") < out.index("dragon") < out.index("── answer 3 ──")
    assert "groups: [1 3] [2]" in out and "functionally unique: 2/3" in out
    assert "newest answer: repeats answer 1" in out
    assert "verdict: WARNING" in out and "[2/3 unique]" in out
    with Store() as store:
        summary = store.list_conversations()[0]
        turn = store.load_conversation(summary.id).turns[0]
    assert [v.strategy for v in turn.variants] == ["general-icr"] * 3
    assert turn.variants[-1].metrics["unique"] == 2
    assert turn.user.text == "Write a short story."


def test_sample_json_and_no_save(fake_config, capsys):
    fake_config.responder = lambda body: Reply("Response 1: Kenya.\nResponse 2: Ghana.")
    assert run(["sample", "Name a country in Africa.", "-n", "2", "--category", "B",
                "--strategy", "anchored-system", "--judge", "local", "--json", "--no-save"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["text"] for a in data["answers"]] == ["Kenya.", "Ghana."]
    assert data["report"]["unique"] == 2 and data["report"]["status"] == "good"
    assert data["category"]["letter"] == "B" and data["saved_variant_ids"] == []
    with Store() as store:
        assert store.list_conversations() == []


def test_sample_rejects_an_unknown_category(fake_config, capsys):
    assert run(["sample", "Hi", "--category", "Z"]) == 2
    assert "unknown category 'Z'" in capsys.readouterr().err
    assert fake_config.requests == []


def test_sample_reports_a_server_failure_and_keeps_finished_answers(fake_config, capsys):
    fake_config.responder = [Reply("first answer"), Reply(fault="401")]
    assert run(["sample", "Write a poem.", "-n", "2", "--category", "G", "--strategy", "temperature"]) == 1
    assert "authentication failed" in capsys.readouterr().err
    with Store() as store:
        turn = store.load_conversation(store.list_conversations()[0].id).turns[0]
    assert [v.text for v in turn.variants] == ["first answer"]


def test_judge_command_adds_equivalent_to_each_line(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"category": "C", "prompt": "Roll a die.", "response_1": "You rolled a 3.", "response_2": "3", "id": 1},
            {"category": "C", "prompt": "Roll a die.", "response_1": "You rolled a 3.", "response_2": "It's a 6!"},
            {"prompt": "Say hi", "response_1": "Hello there!", "response_2": "Hello there!"}]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert run(["judge", "--pairs", str(pairs), "--judge", "local"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["equivalent"] for r in out] == [True, False, True]
    assert out[0]["id"] == 1 and out[0]["response_2"] == "3"


def test_judge_command_names_the_bad_line(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"response_1": "a", "response_2": "b"}\n{"response_1": "only one"}\n', encoding="utf-8")
    assert run(["judge", "--pairs", str(pairs), "--judge", "local"]) == 2
    assert f"{pairs}:2: needs string fields response_1 and response_2" in capsys.readouterr().err


ANSWERS = iter(["Collect rainwater in barrels for the garden.", "Take shorter showers with a timer.",
                "Fix leaking taps and pipes.", "Install a dual-flush toilet.", "Reuse cooking water for plants."] * 10)


def bench_server(body: dict) -> Reply:
    text = body["messages"][-1]["content"]
    if "functionally equivalent" in text:
        return Reply("NO")
    if "criteria" in text.lower() and "Score the response" not in text:
        return Reply("1. Answers the question\n2. Is concise")
    if "Score the response" in text:
        return Reply("4")
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if system:
        return Reply("Response 1: harvest rain\n\nResponse 2: shorter showers")
    return Reply(next(ANSWERS))  # every generation request gets another idea


def test_bench_runs_resumes_and_writes_report_and_chart(fake_config, tmp_path, capsys):
    fake_config.responder = bench_server
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "e1", "category": "E", "prompt": "How can I save water?"}\n'
                       '{"id": "nb1", "category": "Creativity", "prompt": "Write a slogan for tea."}\n',
                       encoding="utf-8")
    out = tmp_path / "bench"
    argv = ["bench", "--prompts", str(prompts), "--strategies", "temperature", "general-system", "-n", "2",
            "--judge", "llm", "--quality", "--out", str(out), "--concurrency", "3"]
    assert run(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["prompt_id"], r["strategy"]) for r in rows) == [
        ("e1", "general-system"), ("e1", "temperature"), ("nb1", "general-system"), ("nb1", "temperature")]
    assert {r["category"] for r in rows} == {"E", "G"}  # NoveltyBench's "Creativity" is G
    assert all(r["unique"] == 2 and r["quality"] == 4.0 for r in rows)
    report = (out / "report.md").read_text()
    assert "| E Design | 2.00 (1) | 2.00 (1) |" in report and "Checklist quality" in report
    assert "1024 max tokens per answer" in report and "temperature 0.5, top-p 0.9" in report
    generation = [r for r in fake_config.requests if r.get("stream")]
    assert generation and all(r["temperature"] == 0.5 and r["top_p"] == 0.9 for r in generation)
    assert {r["max_tokens"] for r in generation} == {1024, 2048}  # per answer; x k for k-at-once
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["protocol"]["temperature"] == 0.5 and run_json["prompt_set_hash"].startswith("sha256:")
    assert run_json["judges"] == ["llm (fake/test-model)"] and run_json["settings"]["additions"] is False
    assert "the generator judges itself" in report
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report:" in capsys.readouterr().out

    sent = len(fake_config.requests)
    assert run(argv) == 0  # everything is done: nothing is asked again
    assert len(fake_config.requests) == sent
    assert len((out / "results.jsonl").read_text().splitlines()) == 4


def test_bench_rejects_a_broken_prompt_file(fake_config, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": \n', encoding="utf-8")
    assert run(["bench", "--prompts", str(prompts), "--out", str(tmp_path / "out")]) == 2
    assert f"{prompts}:2: not a prompt line" in capsys.readouterr().err
    assert fake_config.requests == []


def test_builtin_prompts_have_five_or_more_per_category():
    from taskdiv_chat.diversity.bench import BUILTIN_PROMPTS, read_prompts
    from taskdiv_chat.taxonomy import LETTERS

    prompts = read_prompts(BUILTIN_PROMPTS)
    assert all(sum(p.category == c for p in prompts) >= 5 for c in LETTERS)
    assert len(prompts) > 40
    # room for variety: multi-method math and open design problems
    assert sum(p.category == "D" for p in prompts) >= 10 and sum(p.category == "E" for p in prompts) >= 10


def test_noveltybench_file_reads_with_mapped_categories():
    from taskdiv_chat.diversity.bench import read_prompts

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "noveltybench-curated.jsonl"
    if not path.exists():
        pytest.skip("shared NoveltyBench data not present")
    prompts = read_prompts(path)
    assert len(prompts) == 100
    assert {p.category for p in prompts} <= {"B", "C", "G", "H"}


@pytest.mark.slow
def test_sample_offline_on_the_embedded_model_with_the_local_judge(capsys):
    assert run(["sample", "Name a country in Africa.", "-n", "2", "--category", "B", "--strategy", "anchored-icr",
                "--max-tokens", "16", "--json", "--no-save"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] == "local" and len(data["answers"]) == 2
    assert all(a["text"] for a in data["answers"])
    assert data["report"]["judge"].startswith("local") and data["report"]["unique"] in (1, 2)


def test_sample_classifies_the_prompt_when_no_category_is_given(fake_config, capsys):
    def server(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        if text.startswith("Classify the user prompt"):
            return Reply("D")
        return Reply("Subtract 7 from both sides: 3x = 15, so x = 5." if len(body["messages"]) == 1
                     else "Guess and check: x = 4 gives 19 and x = 5 gives 22, so x = 5.")

    fake_config.responder = server
    assert run(["sample", "Solve 3x + 7 = 22.", "-n", "2", "--judge", "local", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "category: D Problem-Solving Objective" in out
    assert "final answers: 5, 5 (agree)" in out and "verdict: GOOD" in out
