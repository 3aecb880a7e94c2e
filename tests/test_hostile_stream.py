"""Hostile servers against the OpenAI-compatible client, through the real loopback server:
content that is not text, lone surrogates, JSON too deep to read, trickling, endless and
huge streams, Retry-After waits beyond the deadline, and error bodies that echo the key.
Each must end as a typed BackendError that keeps the partial text."""

from __future__ import annotations

import time

import pytest

from taskdiv_chat.backends.base import (
    AnswerTooLargeError,
    AuthError,
    DeadlineError,
    MalformedStreamError,
    RateLimitError,
    collect,
)
from tests.support.fake_server import BAD_EVENTS, Reply
from tests.test_openai_client import USER, make_backend  # noqa: F401 (a fixture)


@pytest.mark.parametrize("fault", sorted(BAD_EVENTS))
async def test_malformed_event_is_a_typed_error_keeping_the_partial_text(fake_server, make_backend, fault):
    fake_server.responder = lambda body: Reply("Rain falls softly today", fault=fault, fault_after=2)
    deltas: list[str] = []
    with pytest.raises(MalformedStreamError) as caught:
        await collect(make_backend(), USER, on_text=deltas.append)
    assert caught.value.kind == "malformed-stream"
    assert "malformed stream" in caught.value.message
    assert caught.value.partial == "Rain falls" == "".join(deltas)
    assert len(caught.value.message) < 300  # 50k-deep JSON is not pasted into the message
    assert len(fake_server.requests) == 1  # text had reached the caller: never asked twice


@pytest.mark.parametrize("fault", ["content-number", "surrogate", "deep-json"])
async def test_malformed_first_event_is_not_retried_forever(fake_server, make_backend, fault):
    fake_server.responder = lambda body: Reply("Rain", fault=fault, fault_after=0)
    with pytest.raises(MalformedStreamError) as caught:
        await collect(make_backend(), USER)
    assert caught.value.partial == ""


async def test_non_streamed_content_that_is_not_text(fake_server, make_backend):
    # complete() reads one JSON body: a content of 42 is as malformed there as in a stream.
    fake_server.responder = lambda body: Reply(error=(200, {"choices": [{"message": {"content": 42}}]}))
    with pytest.raises(MalformedStreamError):
        await make_backend().complete(USER)
    fake_server.responder = lambda body: Reply(error=(200, "[" * 50_000 + "]" * 50_000))
    with pytest.raises(MalformedStreamError):
        await make_backend().complete(USER)


# --- deadline and size cap ---------------------------------------------------------------------


async def test_trickling_stream_stops_at_the_answer_timeout(fake_server, make_backend):
    # One byte every 20 ms never trips read_timeout (5 s); answer_timeout is what ends it.
    fake_server.responder = lambda body: Reply("Rain falls softly on the roof", fault="trickle", chunk_delay=0.02)
    started = time.monotonic()
    with pytest.raises(DeadlineError) as caught:
        await collect(make_backend(answer_timeout=0.8), USER)
    assert 0.8 <= time.monotonic() - started < 2.5
    assert "answer_timeout" in caught.value.message and "0.8 s" in caught.value.message
    assert fake_server.wait_for_disconnects(1)  # the server was told to stop


async def test_endless_stream_stops_at_the_answer_timeout_keeping_its_text(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("more rain", fault="endless", chunk_delay=0.01)
    deltas: list[str] = []
    with pytest.raises(DeadlineError) as caught:
        await collect(make_backend(answer_timeout=0.5), USER, on_text=deltas.append)
    assert caught.value.partial.startswith("more rainmore rain")
    assert caught.value.partial == "".join(deltas)
    assert fake_server.wait_for_disconnects(1)


async def test_slow_headers_count_against_the_answer_timeout(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("late", first_byte_delay=3)
    started = time.monotonic()
    with pytest.raises(DeadlineError):
        await collect(make_backend(answer_timeout=0.5), USER)
    assert time.monotonic() - started < 2


async def test_huge_answer_is_cut_at_max_answer_chars(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("Rain falls", fault="huge", huge_chars=5_000_000)
    deltas: list[str] = []
    with pytest.raises(AnswerTooLargeError) as caught:
        await collect(make_backend(max_answer_chars=200_000), USER, on_text=deltas.append)
    assert len(caught.value.partial) == 200_000 == len("".join(deltas))
    assert caught.value.partial.startswith("Rain fallsxxx")
    assert "200,000 characters" in caught.value.message and "max_answer_chars" in caught.value.message
    assert fake_server.wait_for_disconnects(1)


async def test_an_event_that_never_ends_is_cut(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("Rain falls", fault="endless-event")
    with pytest.raises(AnswerTooLargeError) as caught:
        await collect(make_backend(max_answer_chars=1000, answer_timeout=30), USER)
    assert caught.value.partial == "Rain falls"
    assert "bytes" in caught.value.message


async def test_huge_non_streamed_answer_is_refused(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("word " * 20_000)
    with pytest.raises(AnswerTooLargeError):
        await make_backend(max_answer_chars=1000).complete(USER)


# --- Retry-After ------------------------------------------------------------------------------


async def test_retry_after_beyond_the_deadline_gives_up_at_once(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(fault="429", retry_after=86400)
    started = time.monotonic()
    waits = []
    with pytest.raises(RateLimitError) as caught:
        await collect(make_backend(answer_timeout=60), USER, on_wait=waits.append)
    assert time.monotonic() - started < 1
    assert len(fake_server.requests) == 1 and waits == []
    assert "asked to wait 86400 s" in caught.value.message and "answer_timeout (60 s)" in caught.value.message


async def test_retry_after_wait_is_reported_before_it_happens(fake_server, make_backend):
    fake_server.responder = [Reply(fault="429", retry_after=0.3), Reply("after the wait")]
    waits = []
    completion = await collect(make_backend(), USER, on_wait=waits.append)
    assert completion.text == "after the wait"
    assert [(w.seconds, w.attempt, w.attempts, w.retry_after) for w in waits] == [(0.3, 2, 3, True)]
    assert "rate limited (429)" in waits[0].describe() and "Retry-After" in waits[0].describe()


async def test_own_backoff_is_reported_too(fake_server, make_backend):
    fake_server.responder = [Reply(fault="500"), Reply("second try")]
    chunks = [chunk async for chunk in make_backend().stream(USER)]
    waits = [c.wait for c in chunks if c.wait is not None]
    assert [(w.seconds, w.retry_after) for w in waits] == [(0.5, False)]
    assert "".join(c.text for c in chunks) == "second try"


# --- secrets in error bodies ------------------------------------------------------------------


async def test_error_body_echoing_the_key_is_redacted(fake_server, make_backend, monkeypatch):
    monkeypatch.setenv("HOSTILE_TEST_KEY", "sk-hostile-0123456789abcdef")
    fake_server.responder = lambda body: Reply(fault="401-echo")
    with pytest.raises(AuthError) as caught:
        await collect(make_backend(api_key_env="HOSTILE_TEST_KEY"), USER)
    assert "sk-hostile-0123456789abcdef" not in str(caught.value)
    assert "0123456789abcdef" not in repr(caught.value.args)
    assert "Bearer [redacted]" in str(caught.value)


async def test_header_value_echoed_in_an_error_is_redacted(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(error=(400, {"error": {"message": "bad header X-Token: tok-secret-42"}}))
    with pytest.raises(Exception) as caught:
        await collect(make_backend(headers={"X-Token": "tok-secret-42"}), USER)
    assert "tok-secret-42" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_an_ordinary_header_value_stays_readable_in_an_error(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(error=(400, {"error": {"message": "unknown app myapp"}}))
    with pytest.raises(Exception) as caught:
        await collect(make_backend(headers={"X-Title": "myapp"}), USER)
    assert "unknown app myapp" in str(caught.value)  # X-Title is not a credential: same rule as the store's
