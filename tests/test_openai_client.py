"""The OpenAI-compatible client against the real loopback server (tests.support.fake_server),
scripted per test: streaming, SSE quirks, every fault mode, retries, cancellation."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time

import httpx
import pytest

from taskdiv_chat.backends.base import (
    AuthError,
    BackendError,
    ConnectionRefusedError_,
    DisconnectedError,
    MalformedStreamError,
    RateLimitError,
    ServerError,
    TimeoutError_,
    UnknownModelError,
    Usage,
    collect,
)
from taskdiv_chat.backends.openai import _END, OpenAIBackend, _retry_after, _SSEDecoder
from taskdiv_chat.config import BackendConfig
from tests.support import free_port
from tests.support.fake_server import FakeOpenAIServer, Reply

USER = [{"role": "user", "content": "Tell me about rain"}]


@pytest.fixture
async def make_backend(fake_server):
    """OpenAIBackend factory pointed at the loopback server; closes what it made."""
    made: list[OpenAIBackend] = []

    def make(transport=None, **overrides) -> OpenAIBackend:
        fields = {"base_url": fake_server.base_url, "model": "test-model", "max_retries": 2,
                  "read_timeout": 5, "connect_timeout": 2, **overrides}
        backend = OpenAIBackend("fake", BackendConfig(**fields), transport=transport)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def collect_with_deltas(backend, messages=USER, **params):
    deltas: list[str] = []
    completion = await collect(backend, messages, on_text=deltas.append, **params)
    return completion, deltas


# --- streaming ------------------------------------------------------------------------------


async def test_streams_text_finish_and_usage(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("Rain falls softly on the roof")
    backend = make_backend()
    chunks = [chunk async for chunk in backend.stream(USER)]
    assert [c.text for c in chunks if c.text] == ["Rain", " falls", " softly", " on", " the", " roof"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    # The server counts prompt words (4) and pieces (6) and sends them in a usage-only chunk.
    assert [c.usage for c in chunks if c.usage] == [Usage(prompt_tokens=4, completion_tokens=6)]
    body = fake_server.requests[0]
    assert body["model"] == "test-model"
    assert body["messages"] == USER
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_collect_gathers_deltas_timings_and_usage(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("one two three", chunk_delay=0.05)
    completion, deltas = await collect_with_deltas(make_backend())
    assert deltas == ["one", " two", " three"]
    assert completion.text == "one two three"
    assert (completion.backend, completion.model, completion.finish_reason) == ("fake", "test-model", "stop")
    assert completion.usage.total_tokens == 4 + 3
    # Three pieces 50 ms apart: the first arrives after one delay, the whole after three.
    assert 0.05 <= completion.first_token_s < completion.total_s
    assert completion.total_s >= 0.15


async def test_usage_is_none_when_server_sends_none(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("no usage here", usage=False)
    completion, _ = await collect_with_deltas(make_backend())
    assert completion.text == "no usage here"
    assert completion.usage is None
    assert completion.finish_reason == "stop"


@pytest.mark.parametrize("quirk", [
    {"keepalives": True},  # ": keep-alive" comments before every event
    {"line_end": "\r\n"},  # CRLF line endings
    {"line_end": "\r"},  # CR alone, which the SSE spec allows too
    {"split_events": True, "keepalives": True, "line_end": "\r\n"},
])
async def test_sse_quirks_give_the_same_answer(fake_server, make_backend, quirk):
    fake_server.responder = lambda body: Reply("Clouds gather over the hills", **quirk)
    completion, deltas = await collect_with_deltas(make_backend())
    assert deltas == ["Clouds", " gather", " over", " the", " hills"]
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(4, 5)


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, noting every piece of body it hands to the client."""

    def __init__(self):
        super().__init__()
        self.reads: list[bytes] = []

    async def handle_async_request(self, request):
        response = await super().handle_async_request(request)
        inner, reads = response.stream, self.reads

        class Recorded(httpx.AsyncByteStream):
            async def __aiter__(self):
                async for part in inner:
                    reads.append(part)
                    yield part

            async def aclose(self):
                await inner.aclose()

        response.stream = Recorded()
        return response


async def test_events_split_across_reads_are_reassembled(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("Split events still parse", split_events=True)
    transport = RecordingTransport()
    completion, deltas = await collect_with_deltas(make_backend(transport=transport))
    assert deltas == ["Split", " events", " still", " parse"]
    # Proof that the JSON really arrived in halves: some read ends inside an event.
    halves = [r for r in transport.reads if r.startswith(b"data: {") and not r.endswith(b"\n\n")]
    assert len(halves) >= 4
    assert completion.usage == Usage(4, 4)


async def test_unicode_line_separators_inside_text_survive(fake_server, make_backend):
    # vLLM and llama.cpp send these raw inside JSON strings; a splitlines()-style reader
    # (httpx's aiter_lines) would cut the JSON in two there.
    pieces = ["one\u2028two", " three\u2029four", " five\x85six", " seven\x0bend"]
    fake_server.responder = lambda body: Reply(chunks=pieces)
    completion, deltas = await collect_with_deltas(make_backend())
    assert deltas == pieces
    assert completion.finish_reason == "stop"


def decode_all(reads: list[bytes]) -> list[str]:
    decoder = _SSEDecoder()
    return [event for raw in [*reads, _END] for event in decoder.feed(raw)]


SSE_SAMPLE = (
    b": comment first\r\n\r\n"
    b"event: message\r\nid: 7\r\nretry: 100\r\ndata: {\"a\": 1}\r\n\r\n"
    b"data:{\"b\": \"caf\xc3\xa9 \xe2\x80\xa8 x\"}\n\n"  # no space after the colon; UTF-8; raw U+2028
    b"data: {\"c\":\r\ndata: 3}\r\r"  # one event in two data lines; CR-only ending
    b"\n\n\n"  # stray blank lines
    b"data: [DONE]"  # cut before its blank line
)
SSE_EVENTS = ['{"a": 1}', '{"b": "caf\u00e9 \u2028 x"}', '{"c":\n3}', "[DONE]"]


def test_sse_decoder_in_one_read():
    assert decode_all([SSE_SAMPLE]) == SSE_EVENTS


@pytest.mark.parametrize("cut", range(1, len(SSE_SAMPLE)))
def test_sse_decoder_with_a_read_boundary_anywhere(cut):
    # Every place a read can end: mid-UTF-8 character, between \r and \n, mid-"data:".
    assert decode_all([SSE_SAMPLE[:cut], SSE_SAMPLE[cut:]]) == SSE_EVENTS


def test_sse_decoder_one_event_per_read():
    # How h11 hands over a chunked body: one frame per read, mostly one event per frame.
    reads = [b'data: {"a": 1}\n\n', b'data:{"b": 2}\n\n', b": ping\n\n", b'data: {"c": 3}\r\n\r\n',
             b"data: [DONE]\n\n"]
    assert decode_all(reads) == ['{"a": 1}', '{"b": 2}', '{"c": 3}', "[DONE]"]


def test_sse_decoder_byte_by_byte():
    assert decode_all([bytes([b]) for b in SSE_SAMPLE]) == SSE_EVENTS


def test_sse_decoder_long_line_over_many_reads():
    line = b'data: {"t": "' + b"x" * 100_000 + b'"}'
    reads = [line[i:i + 1000] for i in range(0, len(line), 1000)] + [b"\r", b"\r", b"data: [DONE]\n\n"]
    assert decode_all(reads) == ['{"t": "' + "x" * 100_000 + '"}', "[DONE]"]


async def test_complete_without_streaming(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("forty two")
    completion = await make_backend().complete(USER)
    assert completion.text == "forty two"
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(4, 2)
    assert "stream" not in fake_server.requests[0]


async def test_list_models(fake_server, make_backend):
    fake_server.models = ("zeta-7b", "alpha-1b", "test-model")
    assert await make_backend().list_models() == ["alpha-1b", "test-model", "zeta-7b"]


async def test_sampling_parameters_from_config_and_call(fake_server, make_backend):
    backend = make_backend(temperature=0.4, max_tokens=50)
    await collect(backend, USER, temperature=1.2, seed=7, top_p=None)
    body = fake_server.requests[0]
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (1.2, 50, 7)
    assert "top_p" not in body


# --- headers ----------------------------------------------------------------------------------


async def test_api_key_from_env_is_sent_as_bearer(fake_server, make_backend, monkeypatch):
    fake_server.api_key = "sk-test-123"
    monkeypatch.setenv("FAKE_SERVER_KEY", "sk-test-123")
    backend = make_backend(api_key_env="FAKE_SERVER_KEY")
    completion = await backend.complete(USER)
    assert completion.text == "You said: Tell me about rain"
    assert fake_server.headers[0]["authorization"] == "Bearer sk-test-123"
    assert await backend.list_models() == ["test-model"]


async def test_missing_key_is_auth_error_naming_the_variable(fake_server, make_backend):
    fake_server.api_key = "sk-test-123"
    backend = make_backend(api_key_env="FAKE_SERVER_KEY")  # not set in the environment
    with pytest.raises(AuthError) as caught:
        await collect(backend, USER)
    assert "$FAKE_SERVER_KEY" in str(caught.value)
    assert "authorization" not in fake_server.headers[0]
    assert len(fake_server.requests) == 1  # never retried


async def test_extra_headers_are_sent(fake_server, make_backend):
    backend = make_backend(headers={"HTTP-Referer": "https://example.invalid/taskdiv", "X-Title": "taskdiv-chat"})
    await collect(backend, USER)
    await backend.complete(USER)
    for headers in fake_server.headers:
        assert headers["http-referer"] == "https://example.invalid/taskdiv"
        assert headers["x-title"] == "taskdiv-chat"


# --- errors before any text -------------------------------------------------------------------


async def test_401_is_auth_error_and_not_retried(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(fault="401")
    with pytest.raises(AuthError) as caught:
        await collect(make_backend(), USER)
    error = caught.value
    assert (error.kind, error.status, error.partial) == ("auth", 401, "")
    assert "set api_key_env" in error.message
    assert len(fake_server.requests) == 1


async def test_unknown_model_is_typed_and_not_retried(fake_server, make_backend):
    with pytest.raises(UnknownModelError) as caught:
        await collect(make_backend(model="no-such-model"), USER)
    assert caught.value.kind == "unknown-model"
    assert "'no-such-model'" in caught.value.message
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("status, body", [
    (404, {"object": "error", "message": "The model `nope` does not exist.", "type": "NotFoundError",
           "param": None, "code": 404}),  # vLLM: top-level message, numeric code
    (404, {"error": {"message": 'model "nope" not found, try pulling it first', "type": "api_error",
                     "param": None, "code": None}}),  # Ollama
    (400, {"error": {"message": "nope is not a valid model ID", "code": 400}}),  # OpenRouter
    (404, {"error": "Model nope not found"}),  # a bare string error
])
async def test_unknown_model_in_other_servers_words(fake_server, make_backend, status, body):
    fake_server.responder = lambda _: Reply(error=(status, body))
    with pytest.raises(UnknownModelError):
        await make_backend().complete(USER)


async def test_plain_404_points_at_base_url(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(error=(404, "404 page not found"))
    with pytest.raises(BackendError) as caught:
        await collect(make_backend(), USER)
    assert type(caught.value) is BackendError
    assert "is base_url right" in caught.value.message


async def test_429_waits_retry_after_then_succeeds(fake_server, make_backend):
    # 0.8 s is longer than the first default backoff (0.5 s), so waiting it proves Retry-After was read.
    fake_server.responder = [Reply(fault="429", retry_after=0.8), Reply("after the wait")]
    started = time.monotonic()
    completion, _ = await collect_with_deltas(make_backend())
    assert time.monotonic() - started >= 0.8
    assert completion.text == "after the wait"
    assert len(fake_server.requests) == 2


async def test_429_gives_up_after_max_retries(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(fault="429", retry_after=0.05)
    with pytest.raises(RateLimitError) as caught:
        await collect(make_backend(max_retries=1), USER)
    assert (caught.value.kind, caught.value.status, caught.value.retry_after) == ("rate-limit", 429, 0.05)
    assert len(fake_server.requests) == 2


async def test_500_is_retried_then_succeeds(fake_server, make_backend):
    fake_server.responder = [Reply(fault="500", retry_after=0), Reply(fault="500", retry_after=0), Reply("third time")]
    completion, _ = await collect_with_deltas(make_backend(max_retries=2))
    assert completion.text == "third time"
    assert len(fake_server.requests) == 3


async def test_a_long_error_page_is_a_retryable_server_error_not_a_too_large_answer(fake_server, make_backend):
    page = "<html><body>" + "Service Unavailable. " * 3500 + "</body></html>"  # ~70 KB, past the error cap
    fake_server.responder = [Reply(error=(503, page)), Reply("after the outage")]
    completion = await make_backend(max_retries=1).complete(USER)
    assert completion.text == "after the outage" and len(fake_server.requests) == 2
    fake_server.responder = lambda body: Reply(error=(503, page))
    with pytest.raises(ServerError) as caught:
        await make_backend(max_retries=0).complete(USER)
    assert caught.value.status == 503 and caught.value.retryable


async def test_500_gives_up_after_max_retries(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(fault="500", retry_after=0)
    with pytest.raises(ServerError) as caught:
        await make_backend(max_retries=2).complete(USER)
    assert (caught.value.kind, caught.value.status) == ("server", 500)
    assert len(fake_server.requests) == 3


async def test_disconnect_before_first_token_is_retried(fake_server, make_backend):
    fake_server.responder = [Reply("lost words", fault="disconnect", fault_after=0), Reply("second try")]
    completion, deltas = await collect_with_deltas(make_backend())
    assert deltas == ["second", " try"]
    assert len(fake_server.requests) == 2


async def test_connection_refused(make_backend):
    backend = make_backend(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with pytest.raises(ConnectionRefusedError_) as caught:
        await collect(backend, USER)
    assert caught.value.kind == "connection"
    assert "is the server running?" in caught.value.message
    with pytest.raises(ConnectionRefusedError_):
        await backend.list_models()


async def test_connect_timeout(make_backend):
    # A listener that never accepts, its backlog already full: the kernel drops our SYN.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            backend = make_backend(base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.3, max_retries=0)
            with pytest.raises(TimeoutError_) as caught:
                await collect(backend, USER)
        finally:
            for filler in fillers:
                filler.close()
    assert "timed out connecting after 0.3 s" in caught.value.message
    assert caught.value.retryable  # nothing was sent, so asking again is safe


async def test_connection_refused_is_retried_until_the_server_is_up(make_backend):
    port = free_port()
    backend = make_backend(base_url=f"http://127.0.0.1:{port}/v1", max_retries=3)
    task = asyncio.create_task(collect(backend, USER))
    await asyncio.sleep(0.2)  # the first attempt has been refused; the retry comes after 0.5 s
    assert not task.done()
    server = await asyncio.to_thread(FakeOpenAIServer(lambda body: Reply("up now"), port=port).start)
    try:
        completion = await asyncio.wait_for(task, 10)
        assert completion.text == "up now"
        assert len(server.requests) == 1
    finally:
        server.stop()


async def test_stream_options_rejected_by_old_server_is_dropped(fake_server, make_backend):
    fake_server.reject_stream_options = True
    backend = make_backend(max_retries=0)  # dropping it is not a retry
    first, _ = await collect_with_deltas(backend)
    second, _ = await collect_with_deltas(backend)
    assert first.text == second.text == "You said: Tell me about rain"
    assert first.usage is None  # the server was never asked for it
    assert ["stream_options" in body for body in fake_server.requests] == [True, False, False]


# --- errors after text: partial kept, never retried -------------------------------------------


async def test_disconnect_mid_stream_keeps_partial_and_is_not_retried(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("one two three four five", fault="disconnect", fault_after=3)
    deltas: list[str] = []
    with pytest.raises(DisconnectedError) as caught:
        await collect(make_backend(), USER, on_text=deltas.append)
    assert caught.value.partial == "one two three" == "".join(deltas)
    assert "mid-answer" in caught.value.message
    assert len(fake_server.requests) == 1


async def test_disconnect_mid_stream_without_collect(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("one two three four five", fault="disconnect", fault_after=2)
    texts: list[str] = []
    with pytest.raises(DisconnectedError) as caught:
        async for chunk in make_backend().stream(USER):
            texts.append(chunk.text)
    assert caught.value.partial == "one two" == "".join(texts)
    assert len(fake_server.requests) == 1


async def test_malformed_chunk_keeps_partial(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("alpha beta gamma delta", fault="malformed", fault_after=2)
    with pytest.raises(MalformedStreamError) as caught:
        await collect(make_backend(), USER)
    assert caught.value.kind == "malformed-stream"
    assert caught.value.partial == "alpha beta"
    assert len(fake_server.requests) == 1


async def test_malformed_first_chunk_is_not_retried(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("alpha beta", fault="malformed", fault_after=0)
    with pytest.raises(MalformedStreamError) as caught:
        await collect(make_backend(), USER)
    assert caught.value.partial == ""
    assert len(fake_server.requests) == 1  # a server sending bad JSON will send it again


async def test_error_event_mid_stream_keeps_partial(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("alpha beta gamma", fault="error-event", fault_after=1)
    with pytest.raises(ServerError) as caught:
        await collect(make_backend(), USER)
    assert "The model crashed." in caught.value.message
    assert caught.value.partial == "alpha"
    assert len(fake_server.requests) == 1


async def test_never_ending_stream_hits_read_timeout(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("a b c", fault="never-end", fault_after=2)
    with pytest.raises(TimeoutError_) as caught:
        await collect(make_backend(read_timeout=0.3), USER)
    assert caught.value.kind == "timeout"
    assert caught.value.partial == "a b"
    assert "no data for 0.3 s" in caught.value.message
    assert len(fake_server.requests) == 1


async def test_slow_first_byte_within_read_timeout(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("worth the wait", first_byte_delay=0.3)
    completion, _ = await collect_with_deltas(make_backend(read_timeout=3))
    assert completion.text == "worth the wait"
    assert completion.first_token_s >= 0.3


async def test_slow_first_byte_past_read_timeout_is_not_retried(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("too late", first_byte_delay=1.0)
    with pytest.raises(TimeoutError_) as caught:
        await collect(make_backend(read_timeout=0.2, max_retries=2), USER)
    assert caught.value.partial == ""
    assert len(fake_server.requests) == 1  # asking again would queue the same slow work twice


# --- cancellation -----------------------------------------------------------------------------


async def test_cancel_mid_stream_closes_the_connection(fake_server, make_backend):
    fake_server.responder = lambda body: Reply("first second third", fault="never-end", fault_after=2)
    backend = make_backend(read_timeout=30)
    received: list[str] = []
    both_arrived = asyncio.Event()

    async def consume():
        async for chunk in backend.stream(USER):
            if chunk.text:
                received.append(chunk.text)
                if len(received) == 2:
                    both_arrived.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(both_arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake_server.wait_for_disconnects, 1, 5)
    assert received == ["first", " second"]
    assert len(fake_server.requests) == 1


async def test_cancel_collect_while_text_is_flowing(fake_server, make_backend):
    fake_server.responder = lambda body: Reply(" ".join(f"w{i}" for i in range(200)), chunk_delay=0.02)
    backend = make_backend()
    deltas: list[str] = []
    task = asyncio.create_task(collect(backend, USER, on_text=deltas.append))
    while len(deltas) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake_server.wait_for_disconnects, 1, 5)
    assert 3 <= len(deltas) < 200
    # The client is still usable after a cancel.
    fake_server.responder = lambda body: Reply("fresh answer")
    assert (await collect(backend, USER)).text == "fresh answer"


# --- Retry-After forms ------------------------------------------------------------------------


def test_retry_after_header_forms():
    assert _retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert _retry_after(httpx.Headers({"Retry-After": "0.25"})) == 0.25
    assert _retry_after(httpx.Headers({"retry-after-ms": "1500", "Retry-After": "9"})) == 1.5
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= _retry_after(httpx.Headers({"Retry-After": in_ten})) <= 10
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert _retry_after(httpx.Headers({"Retry-After": past})) == 0.0
    assert _retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert _retry_after(httpx.Headers({})) is None


def test_odd_but_valid_events_and_bad_ones():
    parse = OpenAIBackend("odd", BackendConfig(base_url="http://127.0.0.1:9/v1", model="m"))._parse_chunk
    assert parse('{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}').usage == Usage(3, 2)
    assert parse('{"choices": [{"delta": null, "finish_reason": "stop"}]}').finish_reason == "stop"
    assert parse('{"choices": [{"delta": {"role": "assistant"}}]}').text == ""
    assert parse('{"choices": [{"delta": {"content": "x"}}], "usage": null}').text == "x"
    assert parse('{"object": "chat.completion.chunk"}').text == ""
    for bad in ('[1, 2]', '"text"', "null", '{"choices": ['):
        with pytest.raises(MalformedStreamError):
            parse(bad)
    with pytest.raises(ServerError, match="boom"):
        parse('{"error": "boom"}')
