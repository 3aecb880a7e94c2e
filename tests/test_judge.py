"""The functional-equivalence judges: the short-answer rule, the LLM judge against the
loopback server (protocol, concurrency limit, cache), the local judge, make_judge."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.backends.openai import OpenAIBackend
from taskdiv_chat.config import BackendConfig, Settings
from taskdiv_chat.diversity.calibrate import read_pairs
from taskdiv_chat.diversity.judge import LLMJudge, LocalJudge, make_judge, parse_yes_no, short_answer_rule
from tests.support.fake_server import Reply

PAIRS_FILE = Path(__file__).parent / "data" / "judge_pairs.jsonl"
STORY_1 = "A lighthouse keeper rescued a drowning sailor during a storm and they became lifelong friends."
STORY_2 = "During a storm, the keeper of a lighthouse pulled a sailor from the sea; the two stayed friends for life."


# --- short-answer rule ----------------------------------------------------------------------


@pytest.mark.parametrize("a, b, expected", [
    ("Kenya", "kenya.", True),
    ("Heads", "Tails", False),
    ("The answer is 4", "The answer is 5", True),  # 2 x 3 shared >= 4: the paper's rule, flaws included
    ("Blue whale", "The blue whale", True),  # 2 x 2 >= 3
    ("Red apple", "A green pear", False),  # 0 shared
    ("one two three", "one four five six seven", False),  # 2 x 1 < 5
])
def test_short_answer_rule(a, b, expected):
    assert short_answer_rule(a, b) is expected


def test_short_answer_rule_does_not_apply_past_five_words():
    assert short_answer_rule("one two three four five six", "one") is None
    assert short_answer_rule("", "anything") is None


def test_parse_yes_no():
    assert parse_yes_no("YES") is True
    assert parse_yes_no("No.") is False
    assert parse_yes_no("<think>yes or no? they differ</think>\nNO") is False
    assert parse_yes_no("I cannot tell") is None


# --- LLM judge against the loopback server --------------------------------------------------


@pytest.fixture
def judge_backend(fake_server):
    backend = OpenAIBackend("fake", BackendConfig(base_url=fake_server.base_url, model="test-model", max_retries=0,
                                                  read_timeout=5, connect_timeout=2))
    yield backend


def _verdict_by_content(body: dict) -> Reply:
    text = body["messages"][-1]["content"]
    return Reply("YES" if "lighthouse" in text.lower() else "NO")


async def test_llm_judge_sends_the_paper_prompt_at_temperature_zero(fake_server, judge_backend):
    fake_server.responder = _verdict_by_content
    judge = LLMJudge(judge_backend)
    g = taxonomy.get("G")
    assert await judge.equivalent("Write a story.", g, STORY_1, STORY_2) is True
    body = fake_server.requests[-1]
    assert body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": taxonomy.judge_prompt("Write a story.", g, STORY_1, STORY_2)}]
    assert g.equivalence in body["messages"][0]["content"]
    await judge_backend.aclose()


async def test_llm_judge_says_no_and_accepts_a_letter_for_the_category(fake_server, judge_backend):
    fake_server.responder = lambda body: Reply("No, they differ.")
    judge = LLMJudge(judge_backend)
    long_a = "Subtract 7 from both sides to get 3x = 15, then divide by 3 to get x = 5."
    long_b = "Guess and check: x = 4 gives 19, x = 5 gives 22, so the answer is x = 5."
    assert await judge.judge_pairs("Solve 3x + 7 = 22.", "D", [(long_a, long_b)]) == [False]
    assert taxonomy.get("D").equivalence in fake_server.requests[-1]["messages"][0]["content"]
    await judge_backend.aclose()


async def test_llm_judge_uses_the_short_answer_rule_without_a_request(fake_server, judge_backend):
    judge = LLMJudge(judge_backend)
    assert await judge.judge_pairs("Flip a coin.", "C", [("Heads", "Heads!"), ("Heads", "Tails")]) == [True, False]
    assert fake_server.requests == []
    await judge_backend.aclose()


async def test_llm_judge_respects_its_concurrency_limit(fake_server, judge_backend):
    arrivals: list[float] = []
    lock = threading.Lock()

    def slow(body: dict) -> Reply:
        with lock:
            arrivals.append(time.monotonic())
        return Reply("YES", first_byte_delay=0.3)

    fake_server.responder = slow
    judge = LLMJudge(judge_backend, concurrency=2)
    pairs = [(f"{STORY_1} Version {i}.", f"{STORY_2} Version {i}.") for i in range(6)]
    assert await judge.judge_pairs("Write a story.", "G", pairs) == [True] * 6
    assert len(arrivals) == 6
    first = arrivals[0]
    waves = [sum(1 for t in arrivals if lo <= t - first < lo + 0.25) for lo in (0.0, 0.3, 0.6)]
    assert max(waves) <= 2 and sum(waves) == 6  # never more than 2 requests in flight
    await judge_backend.aclose()


async def test_llm_judge_caches_by_content_across_instances(fake_server, judge_backend, tmp_path):
    fake_server.responder = _verdict_by_content
    cache = tmp_path / "judge-cache.jsonl"
    first = LLMJudge(judge_backend, cache_path=cache)
    assert await first.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert await first.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert len(fake_server.requests) == 1 and first.calls == 1
    second = LLMJudge(judge_backend, cache_path=cache)  # a new process: the file is the cache
    assert await second.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert len(fake_server.requests) == 1
    assert await second.equivalent("Write a poem.", "G", STORY_1, STORY_2) is True  # other prompt: other key
    assert len(fake_server.requests) == 2
    await judge_backend.aclose()


async def test_llm_judge_counts_an_unparseable_reply_as_different(fake_server, judge_backend):
    fake_server.responder = lambda body: Reply("Maybe, it depends on the reader.")
    judge = LLMJudge(judge_backend)
    assert await judge.equivalent("Write a story.", "G", STORY_1, STORY_2) is False
    assert judge.unparsed == 1
    await judge_backend.aclose()


# --- make_judge --------------------------------------------------------------------------------


def test_auto_picks_local_for_the_embedded_backend():
    assert isinstance(make_judge(Settings()), LocalJudge)


async def test_auto_picks_the_llm_judge_for_a_capable_backend(fake_backend_settings):
    judge = make_judge(fake_backend_settings)
    assert isinstance(judge, LLMJudge)
    await judge.aclose()


async def test_auto_respects_a_server_marked_not_capable(fake_server):
    settings = Settings(default_backend="small", backends={
        "small": BackendConfig(base_url=fake_server.base_url, model="test-model", capable=False)})
    assert isinstance(make_judge(settings), LocalJudge)
    assert isinstance(make_judge(settings, "local"), LocalJudge)


def test_unknown_judge_method_is_refused():
    with pytest.raises(ValueError, match="auto, local, llm"):
        make_judge(Settings(), "coin-flip")


# --- local judge ---------------------------------------------------------------------------------


async def test_local_judge_decides_by_category():
    judge = LocalJudge()
    cases = [
        ("A", "What is the capital of Australia?", "Canberra.", "It's Canberra, not Sydney.", True),
        ("A", "What is the capital of Australia?", "The capital is Canberra.", "The capital is Sydney.", False),
        ("C", "Roll a die.", "You rolled a 3.", "You rolled a 5.", False),
        ("D", "Solve 3x + 7 = 22.", "Subtract 7 from both sides: 3x = 15, so x = 5.",
         "Guess and check: x = 4 gives 19, x = 5 gives 22. So x = 5.", False),
        ("D", "Solve 3x + 7 = 22.", "Subtract 7: 3x = 15, so x = 5.", "Subtract 7: 3x = 16, so x = 16/3.", False),
        ("H", "Should I rent or buy?", "Rent: you stay flexible.", "Renting is wiser; you keep flexibility.", True),
        ("G", "Write a story.", STORY_1, STORY_2, True),
    ]
    for letter, prompt, a, b, expected in cases:
        assert await judge.equivalent(prompt, letter, a, b) is expected, (letter, a, b)


async def test_local_judge_agrees_with_the_labeled_pairs():
    rows = read_pairs(PAIRS_FILE)
    judge = LocalJudge()
    right = 0
    for row in rows:
        verdict = await judge.equivalent(row["prompt"], row["category"], row["response_1"], row["response_2"])
        right += verdict == row["equivalent"]
    assert right / len(rows) >= 0.80  # the target; benchmarks/judge.py prints the per-category figures


def test_labeled_pairs_cover_every_category_with_ten_or_more():
    rows = read_pairs(PAIRS_FILE)
    counts = {c: sum(r["category"] == c for r in rows) for c in taxonomy.LETTERS}
    assert min(counts.values()) >= 10, counts
    for row in rows:
        assert isinstance(row["equivalent"], bool) and row["prompt"]


def test_calibration_and_evaluation_sets_share_no_pair():
    calibration = Path(__file__).parent.parent / "taskdiv_chat" / "data" / "judge_calibration.jsonl"
    key = lambda r: (r["response_1"], r["response_2"])  # noqa: E731
    assert not {key(r) for r in read_pairs(calibration)} & {key(r) for r in read_pairs(PAIRS_FILE)}
    assert json.loads((calibration.parent / "judge_model.json").read_text())["model"]["features"]


async def test_analyze_falls_back_to_the_local_judge_when_the_server_fails(fake_server, judge_backend):
    from taskdiv_chat.diversity.report import analyze

    fake_server.responder = lambda body: Reply(fault="500")
    report = await analyze("Write a story.", taxonomy.get("G"), [STORY_1, STORY_2], LLMJudge(judge_backend))
    assert report.groups == [[0, 1]]  # decided by the local judge
    assert report.judge.startswith("local") and "LLM judge failed" in report.judge
    await judge_backend.aclose()
