"""The conversation service against the loopback server and a real SQLite file."""

from __future__ import annotations

import asyncio
import re

import pytest

from taskdiv_chat.config import BackendConfig, Settings
from taskdiv_chat.conversation import (Classified, ConversationService, Delta, Failed, Measured, Measuring, NotSent,
                                       Started, TurnAdded, VariantSaved, fit_context)
from taskdiv_chat.store import Store
from tests.support.fake_server import FakeOpenAIServer, Reply


def responder(answers, letter="G", same=False, gate: asyncio.Event | None = None):
    """Classification -> a letter, judge -> YES/NO, chat -> the answers in turn."""
    answers = list(answers)

    def respond(body: dict):
        last = body["messages"][-1]["content"]
        if last.startswith("Classify the user prompt"):
            return Reply(letter)
        if last.startswith("Decide whether two responses"):
            return Reply("YES" if same else "NO")
        return Reply(answers.pop(0) if len(answers) > 1 else answers[0])

    return respond


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "chat.db") as s:
        yield s


@pytest.fixture
def settings(fake_backend_settings):
    fake_backend_settings.classify.method = "llm"
    fake_backend_settings.judge.method = "llm"
    return fake_backend_settings


async def collect_events(flow) -> list:
    return [event async for event in flow]


async def test_send_streams_stores_and_classifies_beside_the_stream(fake_server, store, settings):
    fake_server.responder = responder(["Once upon a time"], letter="G")
    service = ConversationService(store, settings)
    seen = []
    service.listeners.append(seen.append)
    try:
        events = await collect_events(service.send("Tell me a story"))
        assert await service.category(events[0].turn_id) == "G"
    finally:
        await service.aclose()
    added, started = events[0], events[1]
    assert isinstance(added, TurnAdded) and added.new_conversation and added.text == "Tell me a story"
    assert isinstance(started, Started) and started.strategy == "first" and started.model == "test-model"
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Once upon a time"
    saved = events[-1]
    assert isinstance(saved, VariantSaved) and saved.variant.text == "Once upon a time"
    assert [e.category["letter"] for e in seen if isinstance(e, Classified)] == ["G"]
    # the chat request went out first; the classification came after it
    assert fake_server.requests[0]["messages"][-1]["content"] == "Tell me a story"
    conv = store.load_conversation(added.conversation_id)
    assert conv.turns[0].user.letter == "G"
    assert conv.turns[0].active.text == "Once upon a time" and conv.turns[0].active.status == "done"


async def test_second_message_carries_history_from_memory_without_reading_the_conversation(fake_server, store, settings):
    fake_server.responder = responder(["first answer", "second answer"])
    service = ConversationService(store, settings)
    try:
        await collect_events(service.send("one"))
        await service.category(service.turn().user.id)
        reads = store.conversation_reads
        await collect_events(service.send("two"))
        await service.category(service.turn().user.id)
    finally:
        await service.aclose()
    chats = [b for b in fake_server.requests if not b["messages"][-1]["content"].startswith("Classify")]
    assert chats[-1]["messages"] == [{"role": "user", "content": "one"},
                                     {"role": "assistant", "content": "first answer"},
                                     {"role": "user", "content": "two"}]
    assert store.conversation_reads == reads  # the tree in memory is kept up to date, not read again


async def test_regenerate_awaits_the_category_and_saves_a_variant(fake_server, store, settings):
    fake_server.responder = responder(["story one", "story two"], letter="G")
    service = ConversationService(store, settings)
    try:
        await collect_events(service.send("Tell me a story"))
        events = await collect_events(service.regenerate("temperature"))
    finally:
        await service.aclose()
    saved = [e for e in events if isinstance(e, VariantSaved)]
    assert len(saved) == 1 and saved[0].variant.text == "story two" and saved[0].variant.strategy == "temperature"
    turn = store.load_conversation(service.conversation_id).turns[0]
    assert [v.text for v in turn.variants] == ["story one", "story two"]


async def test_brainstorm_saves_each_answer_and_measure_judges_them_together(fake_server, store, settings):
    fake_server.responder = responder(["A dragon guards a mountain of gold coins.",
                                          "A sailor finds an old map on a desert island.",
                                          "Two robots fall in love inside a noisy factory."], letter="G", same=False)
    service = ConversationService(store, settings)
    seen = []
    service.listeners.append(seen.append)
    try:
        await collect_events(service.send("Tell me a story"))
        events = await collect_events(service.regenerate("temperature", n=2))
        report = await service.measure()
    finally:
        await service.aclose()
    assert len([e for e in events if isinstance(e, VariantSaved)]) == 2
    assert report.n == 3 and report.unique == 3
    assert any(isinstance(e, Measuring) for e in seen) and any(isinstance(e, Measured) for e in seen)
    turn = store.load_conversation(service.conversation_id).turns[0]
    assert turn.variants[-1].metrics["unique"] == 3
    assert {v.params.get("brainstorm") for v in turn.variants[1:]} == {2}


async def test_a_failed_answer_keeps_its_partial_text(fake_server, store, settings):
    fake_server.responder = lambda body: (Reply("G") if body["messages"][-1]["content"].startswith("Classify")
                                          else Reply("half of it and more", fault="disconnect", fault_after=2))
    settings.backends["fake"].max_retries = 0
    service = ConversationService(store, settings)
    try:
        events = await collect_events(service.send("go"))
    finally:
        await service.aclose()
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.stage == "answer" and failed.error
    assert failed.variant.text == "half of" and failed.variant.status == "cut-off"


async def test_cancelling_the_consumer_stops_the_stream_and_keeps_the_partial(fake_server, store, settings):
    fake_server.responder = lambda body: (Reply("G") if body["messages"][-1]["content"].startswith("Classify")
                                          else Reply(chunks=[f"w{i} " for i in range(200)], chunk_delay=0.02))
    service = ConversationService(store, settings)
    got = []

    async def consume():
        async for event in service.send("go"):
            got.append(event)

    try:
        task = asyncio.ensure_future(consume())
        while sum(isinstance(e, Delta) for e in got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await service.aclose()
    variant = store.load_conversation(service.conversation_id).turns[0].active
    assert variant.status == "cut-off" and variant.finish_reason == "cancelled"
    assert variant.text.startswith("w0 w1 w2")
    assert fake_server.wait_for_disconnects(1)


async def test_a_message_larger_than_the_window_is_not_sent_and_nothing_is_stored(fake_server, store, settings):
    settings.backends["fake"].context_window = 1000
    service = ConversationService(store, settings)
    try:
        events = await collect_events(service.send("word " * 5000))
    finally:
        await service.aclose()
    assert isinstance(events[0], NotSent) and events[0].window == 1000 and len(events) == 1
    assert store.list_conversations() == [] and fake_server.requests == []


def test_fit_context_counts_tokens_only_when_bytes_do_not_settle_it():
    short = [{"role": "user", "content": "hello"}]
    assert fit_context(short, 4096, 512) == (True, 5, short)
    long = [{"role": "user", "content": "x " * 3000}, {"role": "assistant", "content": "y " * 3000},
            {"role": "user", "content": "and now?"}]
    fits, used, kept = fit_context(long, 4096, 512)
    assert fits and used < 10 and kept[-1]["content"] == "and now?"


async def test_compare_streams_backends_side_by_side_and_one_failure_does_not_stop_the_others(store, settings):
    def other(body):
        return Reply("from the other one")

    with FakeOpenAIServer(other, models=("other-model",)) as second:
        settings.backends["second"] = BackendConfig(base_url=second.base_url, model="other-model", max_retries=0)
        settings.backends["broken"] = BackendConfig(base_url="http://127.0.0.1:9/v1", model="x", max_retries=0,
                                                    connect_timeout=1)
        service = ConversationService(store, settings)
        try:
            await collect_events(service.send("Name a country in Africa"))
            events = await collect_events(service.compare(["fake", "second", "broken"]))
        finally:
            await service.aclose()
    saved = {e.index: e.variant for e in events if isinstance(e, VariantSaved)}
    failed = [e for e in events if isinstance(e, Failed)]
    assert saved[1].text == "from the other one" and saved[1].backend == "second" and saved[1].model == "other-model"
    assert saved[0].backend == "fake" and saved[0].strategy == "compare"
    assert [f.index for f in failed] == [2] and re.search(r"connect|refused", failed[0].error, re.I)
    turn = store.load_conversation(service.conversation_id).turns[0]
    assert len(turn.variants) == 4  # the first answer, then the three compared (the broken one cut off)
