"""The capability self-check against the loopback server: a server classifies and judges only after it
answers built-in items with known answers; the result is cached per base_url + model; config overrides it."""

from __future__ import annotations

import hashlib
import json
import stat

from taskdiv_chat import taxonomy
from taskdiv_chat.capability import CLASSIFY_ITEMS, JUDGE_ITEMS, cached, ensure
from taskdiv_chat.classify import classify_turn
from taskdiv_chat.config import BackendConfig, ClassifyConfig, Settings, cache_dir
from tests.support.fake_server import Reply


def settings_for(server, model="test-model", capable=None) -> Settings:
    return Settings(default_backend="fake", classify=ClassifyConfig(method="auto", trust="llm"), backends={
        "fake": BackendConfig(base_url=server.base_url, model=model, max_retries=0, read_timeout=10,
                              connect_timeout=2, capable=capable)})


def good(body: dict) -> Reply:
    text = body["messages"][-1]["content"]
    for prompt, category, a, b, same in JUDGE_ITEMS:
        if taxonomy.judge_prompt(prompt, taxonomy.get(category), a, b) == text:
            return Reply("YES" if same else "NO.")
    for prompt, letter in CLASSIFY_ITEMS:
        if taxonomy.classification_prompt(prompt) == text:
            return Reply(f"<think>an easy one</think>\nAnswer: {letter}")
    return Reply("H")  # the real prompt, after the check


async def test_a_good_server_passes_once_and_the_result_is_cached(fake_server):
    fake_server.responder = good
    settings = settings_for(fake_server)
    result = await ensure(settings)
    assert (result.classify, result.judge, result.source) == (True, True, "self-check")
    assert "4/4 categories, 4/4 verdicts" in result.detail
    assert len(fake_server.requests) == 8
    assert all(r["temperature"] == 0 for r in fake_server.requests)
    assert await ensure(settings) == result and len(fake_server.requests) == 8
    stored = json.loads((cache_dir() / "capability.json").read_text())
    assert list(stored) == [hashlib.sha256(f"{fake_server.base_url}|test-model".encode()).hexdigest()]
    other = settings_for(fake_server, model="other-model")  # another model on the same server: its own check
    assert cached(other.backend()[1]).source == "unchecked"


async def test_a_password_in_the_url_never_reaches_the_cache_file_which_is_private(fake_server):
    fake_server.responder = good
    host = fake_server.base_url.split("://", 1)[1]
    settings = Settings(default_backend="fake", backends={"fake": BackendConfig(
        base_url=f"http://alice:pw-Zq81Lm4Nw7Ty@{host}", model="test-model", max_retries=0, read_timeout=10)})
    assert (await ensure(settings)).classify
    path = cache_dir() / "capability.json"
    assert "pw-Zq81Lm4Nw7Ty" not in path.read_text() and "alice" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cached(settings.backend()[1]).source == "self-check"
    assert [p.name for p in path.parent.iterdir()] == ["capability.json"]  # no temp file left


async def test_a_cancelled_caller_does_not_cancel_the_check_for_the_others(fake_server):
    import asyncio

    fake_server.responder = lambda body: Reply(good(body).text, first_byte_delay=0.3)
    settings = settings_for(fake_server)
    first = asyncio.create_task(ensure(settings))
    second = asyncio.create_task(ensure(settings))
    await asyncio.sleep(0.1)  # both are waiting on the one check
    first.cancel()
    result = await second
    assert (result.classify, result.judge, result.source) == (True, True, "self-check")
    assert first.cancelled() and len(fake_server.requests) == 8  # one check, not two


async def test_a_weak_server_fails_and_classification_falls_back_to_local_with_the_reason(fake_server):
    fake_server.responder = lambda body: Reply("A-H\nThe Autumn of the World")
    result = await classify_turn("Write a haiku about autumn.", settings=settings_for(fake_server))
    assert (result.letter, result.method) == ("G", "local")
    assert "not capable" in result.detail and "unreadable category reply" in result.detail
    n = len(fake_server.requests)
    assert n == 8  # the check only; the prompt itself was never sent to the weak server
    again = await classify_turn("Flip a coin.", settings=settings_for(fake_server))
    assert again.method == "local" and len(fake_server.requests) == n


async def test_a_server_that_cuts_yes_no_off_may_classify_but_not_judge(fake_server):
    def cut_off(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        return Reply("<think>Let me compare the two responses carefully") if "YES or NO" in text else good(body)

    fake_server.responder = cut_off
    result = await ensure(settings_for(fake_server))
    assert (result.classify, result.judge) == (True, False)
    assert "capable for classifying only" in result.summary and "unreadable YES/NO" in result.summary


async def test_a_server_with_wrong_answers_fails(fake_server):
    fake_server.responder = lambda body: Reply("YES" if "YES or NO" in body["messages"][-1]["content"] else "A")
    result = await ensure(settings_for(fake_server))
    assert not result.classify and not result.judge
    assert "1/4 categories, 2/4 verdicts" in result.detail


async def test_a_server_down_is_not_capable_now_and_not_cached(fake_server):
    fake_server.responder = lambda body: Reply(fault="500")
    settings = settings_for(fake_server)
    result = await ensure(settings)
    assert not result.judge and "will retry" in result.detail
    assert cached(settings.backend()[1]).source == "unchecked"


async def test_config_overrides_the_check_both_ways(fake_server):
    fake_server.responder = good
    assert (await ensure(settings_for(fake_server, capable=False))).source == "config"
    forced = await ensure(settings_for(fake_server, capable=True))
    assert forced.judge and forced.classify and fake_server.requests == []
    assert not (await ensure(Settings())).judge  # the embedded model
