"""The conversation service against the loopback server and a real SQLite file."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest

from taskdiv_chat.config import BackendConfig, Settings
from taskdiv_chat.conversation import (Classified, ConversationService, Delta, Failed, Measured, Measuring, NotSent,
                                       Started, StoreProblem, StoreRecovered, TurnAdded, VariantSaved,
                                       fit_context)
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


async def until(condition, seconds: float = 20.0) -> None:
    """Wait for the service's background retry (a bound so a broken retry fails, never hangs)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never came true")


async def test_a_locked_store_loses_nothing_and_says_so_once_each_way(fake_server, store, settings):
    fake_server.responder = responder(["saved answer", "kept answer", "also kept", "direct again"])
    service = ConversationService(store, settings)
    seen = []
    service.listeners.append(seen.append)
    store._db.execute("PRAGMA busy_timeout = 50")  # the real 10 s wait, shortened for the test
    locker = sqlite3.connect(store.path, isolation_level=None)
    try:
        first = await collect_events(service.send("one", classify=False))
        second = []
        async for event in service.send("two", classify=False):
            second.append(event)
            if isinstance(event, TurnAdded):  # the turn and the answer's row are stored: now the file locks
                locker.execute("BEGIN EXCLUSIVE")
        third = await collect_events(service.send("three", classify=False))  # sent while it is still locked
        assert not service.saving and third[0].turn_id < 0
        await asyncio.sleep(1.0)  # a few retries meet the lock: still one notice
        locker.execute("ROLLBACK")
        await until(lambda: service.saving)  # the backoff retry writes what was kept
        ids = [t.user.id for t in service.turns]
        fourth = await collect_events(service.send("four", classify=False))
        assert fourth[0].turn_id > 0 and fourth[-1].variant.id is not None  # straight to the store again
        assert [t.user.id for t in service.reload().turns][:3] == ids  # the ids shown stay what they were
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        await service.aclose()
    problems = [e for e in seen if isinstance(e, StoreProblem)]
    assert len(problems) == 1 and "locked" in problems[0].error and problems[0].lost == 0
    recovered = [e for e in seen if isinstance(e, StoreRecovered)]
    assert len(recovered) == 1 and recovered[0].written >= 3  # two finishes of answers and the third turn
    for events, text in ((second, "kept answer"), (third, "also kept")):
        assert "".join(e.text for e in events if isinstance(e, Delta)) == text
        assert isinstance(events[-1], VariantSaved) and events[-1].variant.text == text
    conv = store.load_conversation(first[0].conversation_id)
    assert [t.user.text for t in conv.turns] == ["one", "two", "three", "four"]
    assert [t.active.text for t in conv.turns] == ["saved answer", "kept answer", "also kept", "direct again"]
    assert [t.active.status for t in conv.turns] == ["done"] * 4
    assert [len(t.variants) for t in conv.turns] == [1] * 4


async def test_a_store_locked_until_the_end_is_written_when_the_service_closes(fake_server, store, settings):
    fake_server.responder = responder(["first", "second"])
    service = ConversationService(store, settings)
    seen = []
    service.listeners.append(seen.append)
    store._db.execute("PRAGMA busy_timeout = 50")
    locker = sqlite3.connect(store.path, isolation_level=None)
    try:
        await collect_events(service.send("one", classify=False))
        locker.execute("BEGIN EXCLUSIVE")
        await collect_events(service.send("two", classify=False))  # its turn cannot even be written
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, locker.execute, "ROLLBACK")  # the lock goes while the service closes
        await service.aclose()
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
    assert [type(e) for e in seen if isinstance(e, (StoreProblem, StoreRecovered))] == [StoreProblem, StoreRecovered]
    conv = store.load_conversation(service.conversation_id)
    assert [(t.user.text, t.active.text) for t in conv.turns] == [("one", "first"), ("two", "second")]


async def test_a_read_only_store_is_told_once_and_what_was_lost_at_the_end(fake_server, store, settings):
    fake_server.responder = responder(["saved", "not saved", "neither"])
    service = ConversationService(store, settings)
    seen = []
    service.listeners.append(seen.append)
    try:
        first = await collect_events(service.send("one", classify=False))
        # Read-only from here on: SQLite's own refusal ("attempt to write a readonly database"), as for a
        # file or folder made read-only (root, which runs these tests, ignores file modes).
        store._db.execute("PRAGMA query_only = 1")
        later = [await collect_events(service.send(text, classify=False)) for text in ("two", "three")]
        await asyncio.sleep(2.0)  # several retries fail meanwhile: still one notice
    finally:
        await service.aclose()
    problems = [e for e in seen if isinstance(e, StoreProblem)]
    assert len(problems) == 2 and all("readonly" in p.error for p in problems)
    assert problems[0].lost == 0 and problems[1].lost >= 2  # told once; at the end, what was given up
    assert not [e for e in seen if isinstance(e, StoreRecovered)]
    assert [events[-1].variant.text for events in later] == ["not saved", "neither"]  # the answers went on
    assert [t.active.text for t in service.turns] == ["saved", "not saved", "neither"]
    store._db.execute("PRAGMA query_only = 0")
    conv = store.load_conversation(first[0].conversation_id)
    assert [(t.user.text, t.active.text) for t in conv.turns] == [("one", "saved")]


async def test_without_a_store_a_conversation_runs_in_memory(fake_server, settings):
    fake_server.responder = responder(["first", "second"], letter="C")
    service = ConversationService(None, settings)
    seen = []
    service.listeners.append(seen.append)
    try:
        await collect_events(service.send("one"))
        events = await collect_events(service.send("two"))
        assert await service.category(events[0].turn_id) == "C"
    finally:
        await service.aclose()
    assert not [e for e in seen if isinstance(e, StoreProblem)]
    assert events[-1].variant.text == "second" and events[-1].variant.id is None
    [chat] = [r for r in fake_server.requests if r["messages"][-1]["content"] == "two"]
    assert chat["messages"] == [  # the history came from memory
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "first"},
        {"role": "user", "content": "two"}]


def test_answers_named_for_judging_are_those_saved_and_none_twice():
    from taskdiv_chat.conversation import judged
    from taskdiv_chat.store import Turn, UserTurn, Variant

    def answer(variant_id, text):
        return Variant(variant_id, text, "done", "stop", None, "b", "m", None, None, None, None, 0.0)

    turn = Turn(UserTurn(7, "q", None, None, None, 0.0), [answer(1, "a"), answer(None, "b"), answer(None, "c"),
                                                         answer(2, "d")], 0)
    assert [v.text for v in judged(turn, [2, None, 1, None])] == ["d", "a"]  # not "c" for each unsaved one
    assert [v.text for v in judged(turn)] == ["a", "b", "c", "d"]
