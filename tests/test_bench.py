"""bench's honesty: failures never scored and retried, truncation counted, judges averaged,
settings checked on resume; and `score` on NoveltyBench's and our own generation files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskdiv_chat.cli import main
from tests.support.fake_server import Reply

PROMPTS = ('{"id": "b1", "category": "B", "prompt": "Name a country in Africa."}\n'
           '{"id": "g1", "category": "G", "prompt": "Write a one-line poem about tea."}\n')
GOOD = {"b1": ["Kenya.", "Ghana.", "Peru is not in Africa; Mali."], "g1": ["Tea steams at dawn.", "A cup of calm."]}


def write_config(server, judges: tuple[str, ...] = ()) -> None:
    path = Path(os.environ["TASKDIV_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f'default_backend = "fake"\n[backends.fake]\nbase_url = "{server.base_url}"\n'
            f'model = "test-model"\nmax_retries = 0\n')
    for name in judges:
        text += f'[backends.{name}]\nbase_url = "{server.base_url}"\nmodel = "{name}"\nmax_retries = 0\n'
    path.write_text(text, encoding="utf-8")


def answer(body: dict) -> str:
    """The next good answer to the prompt of a generation request."""
    prompt = body["messages"][0]["content"]
    pid = "b1" if "Africa" in prompt else "g1"
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    return GOOD[pid][turn % len(GOOD[pid])]


def bench(tmp_path: Path, *extra: str) -> int:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(PROMPTS, encoding="utf-8")
    return main(["bench", "--prompts", str(prompts), "--strategies", "general-icr", "-n", "2", "--judge", "local",
                 "--out", str(tmp_path / "out"), *extra])


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fault", ["empty", "interrupted", "500", "disconnect"])
def test_a_failed_answer_fails_its_set_is_never_scored_and_is_retried_on_resume(fake_server, tmp_path, capsys,
                                                                                fault):
    write_config(fake_server)

    def broken(body: dict) -> Reply:
        if "Africa" not in body["messages"][0]["content"]:
            return Reply(answer(body))
        if fault == "empty":
            return Reply("")
        if fault == "interrupted":  # llama.cpp's server: status 200, [DONE], no finish reason
            return Reply("Ken", finish_reason=None)
        return Reply("Kenya is", fault=fault)

    fake_server.responder = broken
    assert bench(tmp_path, "--retries", "1") == 1
    err = capsys.readouterr().err
    assert "1 sets failed after their retries" in err and "b1/general-icr" in err
    rows = {r["prompt_id"]: r for r in records(tmp_path)}
    assert rows["b1"]["status"] == "failed" and len(rows["b1"]["errors"]) == 2  # the try and one retry
    assert "unique" not in rows["b1"]  # never scored
    assert rows["g1"]["status"] == "ok" and rows["g1"]["unique"] == 2
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**1 sets failed**" in report and "| B Pick one | - |" in report
    assert "| B Pick one | 1 / 0 |" in report  # failed sets / truncated answers

    fake_server.responder = lambda body: Reply(answer(body))
    before = len(fake_server.requests)
    assert bench(tmp_path) == 0
    asked = fake_server.requests[before:]
    assert asked and all("Africa" in r["messages"][0]["content"] for r in asked)  # only the failed set again
    rows = {r["prompt_id"]: r for r in records(tmp_path)[2:]}
    assert list(rows) == ["b1"] and rows["b1"]["status"] == "ok" and rows["b1"]["answers"] == ["Kenya.", "Ghana."]
    assert "sets failed" not in (tmp_path / "out" / "report.md").read_text()


def test_truncated_answers_are_scored_and_counted(fake_server, tmp_path):
    write_config(fake_server)
    fake_server.responder = lambda body: Reply(answer(body), finish_reason="length")
    assert bench(tmp_path, "--max-tokens", "8") == 0
    assert all(r["truncated"] == 2 and r["status"] == "ok" for r in records(tmp_path))
    assert "| **all** | 0 / 4 |" in (tmp_path / "out" / "report.md").read_text()


def test_a_rerun_with_other_settings_is_refused(fake_server, tmp_path, capsys):
    write_config(fake_server)
    fake_server.responder = lambda body: Reply(answer(body))
    assert bench(tmp_path) == 0
    assert bench(tmp_path, "--temperature", "1.0") == 2
    assert "temperature 0.5 -> 1.0" in capsys.readouterr().err


def test_unique_counts_are_averaged_over_judges_named_in_the_report(fake_server, tmp_path):
    fake_server.models = ("test-model", "judge-yes", "judge-no")
    write_config(fake_server, judges=("judge-yes", "judge-no"))

    def server(body: dict) -> Reply:
        if "functionally equivalent" in body["messages"][-1]["content"]:
            return Reply("YES" if body["model"] == "judge-yes" else "NO")
        if body["messages"][-1]["content"].startswith("Write 3 to 5"):
            return Reply("1. On topic")
        if "Score the response" in body["messages"][-1]["content"]:
            return Reply("5" if body["model"] == "judge-yes" else "3")
        return Reply("A long answer that is not short. " + answer(body) * 3)  # past the 5-word shortcut

    fake_server.responder = server
    assert bench(tmp_path, "--judge-backend", "judge-yes", "--judge-backend", "judge-no", "--quality") == 0
    rows = records(tmp_path)
    assert all(r["unique"] == 1.5 for r in rows)  # (1 + 2) / 2
    assert all(sorted(r["unique_by_judge"].values()) == [1, 2] for r in rows)
    assert all(r["quality"] == 4.0 for r in rows)  # (5 + 3) / 2, scored by the judges, not the generator
    scorers = {r["model"] for r in fake_server.requests if "Score the response" in r["messages"][-1]["content"]}
    assert scorers == {"judge-yes", "judge-no"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "judges (unique counts averaged over them): llm (judge-yes/judge-yes); llm (judge-no/judge-no)" in report
    assert "judges itself" not in report
    assert "| general-icr | 1.50 |" in report and (tmp_path / "out" / "quality_diversity.png").exists()


def test_self_classify_anchors_with_the_models_label_and_reports_accuracy(fake_server, tmp_path):
    write_config(fake_server)

    def server(body: dict) -> Reply:
        last = body["messages"][-1]["content"]
        if last.startswith("Classify the user prompt"):
            return Reply("B")  # right for b1, wrong for g1
        return Reply(answer(body))

    fake_server.responder = server
    assert bench(tmp_path, "--self-classify", "--strategies", "anchored-icr") == 0
    rows = {r["prompt_id"]: r for r in records(tmp_path)}
    assert rows["g1"]["category"] == "G" and rows["g1"]["anchored_with"] == "B"
    regen = [r for r in fake_server.requests if r.get("stream") and "tea" in r["messages"][0]["content"]
             and len(r["messages"]) > 1]
    from taskdiv_chat.taxonomy import get
    assert regen[-1]["messages"][-1]["content"] == get("B").regen_instruction
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| G Creative | 1 | 0/1 (0%) | B |" in report and "| **all** | 2 | 1/2 (50%) | |" in report


# --- score ---------------------------------------------------------------------------------------


def test_score_reads_noveltybench_generations_offline(tmp_path, capsys):
    path = tmp_path / "gens.jsonl"
    rows = [{"id": "nb-1", "prompt": "Name a country in Africa.", "category": "Factual Knowledge",
             "model": "my-model", "generations": ["Kenya.", "Kenya", "Ghana."]},
            {"id": "nb-2", "prompt": "Roll a six-sided die.", "model": "my-model",
             "generations": json.dumps(["You rolled a 4.", "6", "It's a 4!"])}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert main(["score", str(path), "--out", str(tmp_path / "scored")]) == 0
    scores = [json.loads(line) for line in (tmp_path / "scored" / "scores.jsonl").read_text().splitlines()]
    assert [(s["id"], s["category"], s["unique"], s["partition"]) for s in scores] == [
        ("nb-1", "B", 2, [0, 0, 1]), ("nb-2", "C", 2, [0, 1, 0])]
    assert scores[1]["category_source"] == "classified"
    report = (tmp_path / "scored" / "report.md").read_text()
    assert "| my-model |" in report and "| B Pick one | 2.00 (1) |" in report
    assert "judge: local" in report


def test_score_reads_our_bench_output_and_names_bad_lines(fake_server, tmp_path, capsys):
    write_config(fake_server)
    fake_server.responder = lambda body: Reply(answer(body))
    assert bench(tmp_path) == 0
    assert main(["score", str(tmp_path / "out" / "results.jsonl"), "--judge", "local",
                 "--out", str(tmp_path / "scored")]) == 0
    scores = {s["id"]: s for s in map(json.loads, (tmp_path / "scored" / "scores.jsonl").read_text().splitlines())}
    assert scores["b1"]["unique"] == 2 and scores["b1"]["strategy"] == "general-icr"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "x", "generations": "not a list"}\n', encoding="utf-8")
    assert main(["score", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert f"{bad}:1: 'generations' is a string but not a JSON list" in capsys.readouterr().err


# --- a real server that interrupts overlapping requests ---------------------------------------------

from tests.test_llama_server import KEY, llama_server  # noqa: E402,F401  (the fixture: llama_cpp.server on loopback)


@pytest.mark.slow
def test_bench_on_llama_cpp_server_adapts_concurrency_and_scores_only_whole_answers(llama_server, tmp_path,
                                                                                     monkeypatch):
    """llama.cpp's server ends a stream with status 200 and [DONE] when another request arrives:
    bench must see those answers as failed, lower its concurrency, retry, and score whole answers only."""
    monkeypatch.setenv("LLAMA_SERVER_TEST_KEY", KEY)
    path = Path(os.environ["TASKDIV_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'default_backend = "llama"\n[backends.llama]\nbase_url = "{llama_server}"\n'
                    f'model = "smollm2-135m"\napi_key_env = "LLAMA_SERVER_TEST_KEY"\nread_timeout = 60\n',
                    encoding="utf-8")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(PROMPTS + '{"id": "c1", "category": "C", "prompt": "Flip a coin."}\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["bench", "--prompts", str(prompts), "--strategies", "temperature", "-n", "2", "--judge", "local",
                 "--max-tokens", "12", "--concurrency", "3", "--retries", "3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["prompt_id"] for r in rows} == {"b1", "g1", "c1"} and all(r["status"] == "ok" for r in rows)
    assert all(a.strip() for r in rows for a in r["answers"])
    assert all(f in ("stop", "length") for r in rows for f in r["finish_reasons"])
    concurrency = json.loads((out / "run.json").read_text())["last_run"]["concurrency"]
    assert concurrency["interrupted_streams"] >= 1 and concurrency["end"] < concurrency["start"] == 3
    assert "the server interrupted" in (out / "report.md").read_text()
