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
from taskdiv_chat.diversity.judge import (LLMJudge, LocalJudge, make_judge, near_identical, parse_yes_no,
                                         short_answer_rule)
from tests.support.fake_server import Reply
from tests.test_capability import good

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
    assert parse_yes_no("Answer: **NO**") is False
    assert parse_yes_no("No, they differ in plot.") is False
    assert parse_yes_no("<think>they look alike... yes, probably") is None  # cut off while thinking
    assert parse_yes_no("Not really the same") is None
    assert parse_yes_no("There is no difference") is None  # prose that contains "no" is not a verdict


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


async def test_llm_judge_keeps_the_good_lines_of_a_damaged_cache(fake_server, judge_backend, tmp_path):
    fake_server.responder = _verdict_by_content
    cache = tmp_path / "judge-cache.jsonl"
    first = LLMJudge(judge_backend, cache_path=cache)
    assert await first.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    cache.write_bytes(b'{"key": "\xff\xfe broken", "equivalent": tru\x80\n' + cache.read_bytes())  # not UTF-8
    second = LLMJudge(judge_backend, cache_path=cache)  # starts, and still knows the good line
    assert await second.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert len(fake_server.requests) == 1
    cache.unlink()
    cache.mkdir()  # unreadable as a file: an empty cache
    assert LLMJudge(judge_backend, cache_path=cache)._cache == {}
    await judge_backend.aclose()


@pytest.mark.parametrize("reply", ["Maybe, it depends on the reader.", "<think>Both stories have a lighthouse and",
                                   "The answer is probably yes", "No idea", "Yes and no", ""])
async def test_llm_judge_calls_an_unreadable_reply_unknown_never_different(fake_server, judge_backend, reply):
    fake_server.responder = lambda body: Reply(reply)
    judge = LLMJudge(judge_backend)
    assert await judge.equivalent("Write a story.", "G", STORY_1, STORY_2) is None
    assert judge.unparsed == 1
    await judge_backend.aclose()


async def test_llm_judge_gives_a_thinking_model_room_and_reads_past_the_thinking(fake_server, judge_backend):
    fake_server.responder = lambda body: Reply("<think>Same keeper, same storm, same rescue.</think>\n**YES**")
    judge = LLMJudge(judge_backend)
    assert await judge.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert fake_server.requests[-1]["max_tokens"] >= 512
    await judge_backend.aclose()


async def test_unknown_pairs_are_left_out_of_the_groups_and_the_badge_says_so(fake_server, judge_backend):
    from taskdiv_chat.diversity.report import analyze

    def replies(body: dict) -> Reply:  # answers 0 and 1 judged equal, anything with answer 2 unreadable
        text = body["messages"][-1]["content"]
        return Reply("I can't decide." if "volcano" in text else "YES")

    fake_server.responder = replies
    answers = [STORY_1, STORY_2, "A volcano in Iceland wakes up and a girl bakes bread on its warm slope."]
    report = await analyze("Write a story.", taxonomy.get("G"), answers, LLMJudge(judge_backend))
    assert report.groups == [[0, 1], [2]]
    assert report.unknown_pairs == 2  # an unknown verdict with one member sends answer 2 on to the next
    assert report.pairwise[0][2] is None and report.pairwise[1][2] is None and report.pairwise[0][1] is True
    assert "2 pairs unknown" in report.badge_text and "unreadable" in report.reason
    await judge_backend.aclose()


@pytest.mark.parametrize("a, b, same", [
    ("The capital is Canberra.", "the capital is canberra", True),
    ("**Paris** is the capital.", "Paris is the capital!", True),
    (STORY_1, STORY_1.replace("a drowning", "the drowning"), True),
    (STORY_1, STORY_1.replace("rescued", "rescued").replace("lifelong", "life-long"), True),
    ("Subtract 7 from both sides to get 3x = 15 and divide by 3, so x = 5 is the solution we want here.",
     "Subtract 7 from both sides to get 3x = 15 and divide by 3, so x = 6 is the solution we want here.", False),
    (STORY_1, STORY_1.replace("became", "never became"), False),
    ("The capital of Australia is Sydney, a large city.", "The capital of Australia is Canberra, a large city.", False),
])
def test_near_identical_text(a, b, same):
    assert near_identical(a, b) is same


async def test_identical_answers_are_one_group_without_asking(fake_server, judge_backend):
    from taskdiv_chat.diversity.report import analyze

    fake_server.responder = lambda body: Reply("NO")  # a judge that would split them
    answers = ["Autumn leaves falling\nquietly on the wet road\nsummer says goodbye"] * 3
    report = await analyze("Write a haiku about autumn.", taxonomy.get("G"), answers, LLMJudge(judge_backend))
    assert report.unique == 1 and report.badge_text == "1/3 unique"
    assert fake_server.requests == []
    local = await analyze("Write a haiku about autumn.", taxonomy.get("G"), answers, LocalJudge())
    assert local.unique == 1
    await judge_backend.aclose()


async def test_a_pair_already_in_one_group_is_not_asked(fake_server, judge_backend):
    from taskdiv_chat.diversity.report import analyze

    fake_server.responder = lambda body: Reply("YES")
    answers = [f"{STORY_1} Told for the {i}th time, with {i} gulls watching." for i in range(4, 9)]
    judge = LLMJudge(judge_backend)
    report = await analyze("Write a story.", taxonomy.get("G"), answers, judge)
    assert report.unique == 1
    assert judge.calls == 4  # each newcomer meets the one group once: 4 requests, not the 10 pairs
    await judge_backend.aclose()


# --- make_judge --------------------------------------------------------------------------------


def test_auto_picks_local_for_the_embedded_backend():
    assert isinstance(make_judge(Settings()), LocalJudge)


def _capable_server(body: dict) -> Reply:
    """Answers the self-check right (test_capability.good), then judges: same lighthouse story or not."""
    reply = good(body)
    if reply.text == "H":  # not a self-check item
        return Reply("YES" if "lighthouse" in body["messages"][-1]["content"].lower() else "NO")
    return reply


def _unchecked(server) -> Settings:
    return Settings(default_backend="fake", backends={"fake": BackendConfig(base_url=server.base_url, model="test-model")})


def _weak_server(body: dict) -> Reply:
    """A small model behind llama.cpp: chatters instead of answering with a letter or YES/NO."""
    return Reply("A-H\nThe Autumn of the World\nLeaves fall on")


async def test_auto_judges_with_a_server_only_after_it_passes_the_self_check(fake_server):
    settings = _unchecked(fake_server)
    from taskdiv_chat.capability import cached

    fake_server.responder = _capable_server
    judge = make_judge(settings)
    assert "self-check" in judge.describe() and "pending" in judge.describe()
    assert await judge.equivalent("Write a story.", "G", STORY_1, STORY_2) is True
    assert isinstance(judge.inner, LLMJudge)
    checked = len(fake_server.requests) - 1
    assert checked == 8  # 4 prompts to classify, 4 pairs to judge
    await judge.aclose()
    config = settings.backend()[1]
    assert cached(config).judge and cached(config).source == "self-check"
    again = make_judge(settings)  # the cached result: no second check
    assert isinstance(again, LLMJudge)
    await again.aclose()


async def test_auto_judge_called_concurrently_builds_one_server_judge_and_closes_it(fake_server, monkeypatch):
    """bench runs analyses at once on one judge: one LLMJudge (one HTTP client) is made, and aclose closes it."""
    import asyncio

    from taskdiv_chat.diversity import judge as judge_module

    made = []
    real_make_judge = judge_module.make_judge

    def recording_make_judge(*args, **kwargs):  # the real factory; only remembers what it built
        made.append(real_make_judge(*args, **kwargs))
        return made[-1]

    fake_server.responder = _capable_server
    judge = make_judge(_unchecked(fake_server))
    monkeypatch.setattr(judge_module, "make_judge", recording_make_judge)
    verdicts = await asyncio.gather(*(judge.equivalent("Write a story.", "G", STORY_1, STORY_2) for _ in range(4)))
    assert verdicts == [True] * 4
    await judge.aclose()
    assert made == [judge.inner] and made[0].backend._client.is_closed


async def test_auto_falls_back_to_local_when_the_server_fails_the_self_check(fake_server):
    settings = _unchecked(fake_server)
    from taskdiv_chat.diversity.report import analyze

    fake_server.responder = _weak_server
    judge = make_judge(settings)
    report = await analyze("Write a story.", taxonomy.get("G"), [STORY_1, STORY_2], judge)
    assert isinstance(judge.inner, LocalJudge) and report.groups == [[0, 1]]
    assert "not capable" in report.judge and "unreadable" in report.judge and "A-H" in report.judge
    n = len(fake_server.requests)
    assert isinstance(make_judge(settings), LocalJudge)  # cached: the server is not asked again
    assert len(fake_server.requests) == n
    await judge.aclose()


async def test_config_capable_true_overrides_the_self_check(fake_server):
    settings = Settings(default_backend="fake", backends={
        "fake": BackendConfig(base_url=fake_server.base_url, model="test-model", capable=True)})
    fake_server.responder = _weak_server
    judge = make_judge(settings)
    assert isinstance(judge, LLMJudge) and fake_server.requests == []
    await judge.aclose()


async def test_the_judge_backend_is_set_apart_from_the_chat_backend(fake_server):
    from taskdiv_chat.config import JudgeConfig

    settings = Settings(default_backend="local", judge=JudgeConfig(backend="server"), backends={
        "server": BackendConfig(base_url=fake_server.base_url, model="judge-model", capable=True)})
    judge = make_judge(settings, None, "local")  # the chat runs on the embedded model
    assert isinstance(judge, LLMJudge) and judge.backend.model == "judge-model"
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
    data = Path(__file__).parent.parent / "taskdiv_chat" / "data"
    key = lambda r: (r["response_1"], r["response_2"])  # noqa: E731
    trained = {key(r) for name in ("judge_calibration.jsonl", "judge_hard_pairs.jsonl") for r in read_pairs(data / name)}
    assert not trained & {key(r) for r in read_pairs(PAIRS_FILE)}
    groups = json.loads((data / "judge_model.json").read_text())["groups"]
    assert {"*", "answer", "method", "advice"} <= set(groups)


HARD_PATTERNS = [  # the patterns word overlap gets wrong, each in a style of its own
    ("A", "How many legs does an insect have?", "Six.", "Insects have 6 legs, in three pairs.", True),
    ("A", "How many legs does an insect have?", "Insects have six legs.", "Insects have eight legs.", False),
    ("A", "What is the boiling point of water at sea level?", "100 °C", "It boils at one hundred degrees Celsius.", True),
    ("C", "Rock, paper or scissors?", "✂️", "I pick scissors!", True),
    ("C", "Rock, paper or scissors?", "✊", "Paper.", False),
    ("C", "Roll a die.", "🎲 ⚂", "It's a three.", True),
    ("A", "Who wrote Romeo and Juliet?", "William Shakespeare.", "The Bard of Avon wrote it in the 1590s.", True),
    ("A", "Which city is known as the Big Apple?", "New York City.", "NYC, of course.", True),
    ("D", "Solve x + y = 10, x - y = 2.", "Add the equations: 2x = 12, so x = 6 and y = 4.",
     "From the first, y = 10 - x. Substitute into the second: x - (10 - x) = 2, so x = 6, y = 4.", False),
    ("D", "What is 25% of 60?", "A quarter of 60 is 15.", "0.25 × 60 = 15", False),
    ("D", "What is 17 × 23?", "17 × 23 = 391", "\\(17 \\times 23 = \\boxed{391}\\)", True),
    ("H", "Should I learn the guitar or the piano first?", "Start with the piano: it lays out music theory visually.",
     "Go for the guitar — it's portable and you'll play songs within weeks.", False),
    ("A", "How far is it from London to Paris?", "About 340 km as the crow flies.", "Roughly 211 miles.", True),
    ("A", "What is normal human body temperature?", "37 °C", "37 °F", False),
    ("A", "Which gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air.",
     "Plants absorb oxygen from the air.", False),
    ("B", "Name a famous composer.", "Johann Sebastian Bach", "Carl Philipp Emanuel Bach", False),
    ("C", "Roll two dice.", "🎲 ⚀ and ⚄ — 6 in total.", "I rolled a 1 and a 5.", True),
    ("D", "Solve 4x - 9 = 27.", "Add 9 to both sides: 4x = 36. Divide both sides by 4, so x = 9.",
     "Add 9 to each side to get 4x = 36, then divide each side by 4: x = 9. Check: 4 · 9 - 9 = 27.", True),
    ("D", "A right triangle has legs 6 and 8. How long is the hypotenuse?",
     "By Pythagoras, c² = 6² + 8² = 100, so c = 10.",
     "Spot the 3-4-5 pattern: 6 and 8 are twice 3 and 4, so the hypotenuse is twice 5, which is 10.", False),
    ("G", "Write a two-line poem about a cat.",
     "The cat sat still upon the windowsill,\nand watched the sparrows sing their morning trill.",
     "The cat sat still upon the windowsill,\nthen leapt, and knocked my coffee down the hill.", False),
    ("G", "Write a haiku about snow.", "White hush on the field\nfootprints fill before they're seen\nthe fox is a rumor",
     "White hush on the field\nfootprints fill before they're seen\nthe fox is a rumor", True),
]


@pytest.mark.parametrize("letter, prompt, a, b, expected", HARD_PATTERNS)
async def test_local_judge_on_hard_patterns(letter, prompt, a, b, expected):
    assert await LocalJudge().equivalent(prompt, letter, a, b) is expected


async def test_analyze_falls_back_to_the_local_judge_when_the_server_fails(fake_server, judge_backend):
    from taskdiv_chat.diversity.report import analyze

    fake_server.responder = lambda body: Reply(fault="500")
    report = await analyze("Write a story.", taxonomy.get("G"), [STORY_1, STORY_2], LLMJudge(judge_backend))
    assert report.groups == [[0, 1]]  # decided by the local judge
    assert report.judge.startswith("local") and "LLM judge failed" in report.judge
    await judge_backend.aclose()
