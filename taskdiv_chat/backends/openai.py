"""Async client for any OpenAI-compatible chat-completions server (OpenAI, Ollama /v1,
vLLM, llama.cpp's server, LM Studio, OpenRouter), on httpx.

Retries (429/5xx/connection errors, honouring Retry-After) happen only before the
first token arrives: a half-streamed answer is never requested twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import re
import time
from typing import AsyncIterator

import httpx

from ..config import BackendConfig
from ..redact import Redactor, is_secret_header
from .base import (
    AnswerTooLargeError,
    AuthError,
    BackendError,
    Chunk,
    Completion,
    ConnectionRefusedError_,
    ContextTooLongError,
    DeadlineError,
    DisconnectedError,
    MalformedStreamError,
    Message,
    RateLimitError,
    RetryWait,
    ServerError,
    TimeoutError_,
    UnknownModelError,
    Usage,
)

_ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body read; the rest is not worth memory
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # a lone one (JSON "\ud800") cannot be encoded, shown or stored
# How the servers we support word "no such model" (OpenAI, vLLM, Ollama, OpenRouter, LM Studio).
_UNKNOWN_MODEL = re.compile(
    r"model.*(not found|does not exist|not available|no such)|(unknown|invalid|not a valid|no such) model", re.I)


class OpenAIBackend:
    def __init__(self, name: str, config: BackendConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.name = name
        self.config = config
        self.model = config.model or ""
        self.context_window = config.context_window
        self.base_url = (config.base_url or "").rstrip("/")
        headers = dict(config.headers)
        key = config.api_key()  # read from the environment at start, kept in memory only
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # Error bodies and exception messages may echo the key or a header: never shown as they came.
        self._redactor = Redactor((key or "", *(v for n, v in config.headers.items() if is_secret_header(n))))
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout, write=30.0, pool=30.0),
            transport=transport,
        )
        self._stream_options = True  # dropped if a server rejects it

    # --- public API ---------------------------------------------------------------------

    def body(self, messages: list[Message], stream: bool, **params) -> dict:
        body: dict = {"model": params.pop("model", None) or self.model, "messages": list(messages)}
        for key in ("temperature", "top_p", "max_tokens"):
            value = params.pop(key, None)
            if value is None:
                value = getattr(self.config, key)
            if value is not None:
                body[key] = value
        body.update({k: v for k, v in params.items() if v is not None})
        if stream:
            body["stream"] = True
            if self._stream_options:
                body["stream_options"] = {"include_usage": True}
        return body

    def stream(self, messages: list[Message], **params) -> AsyncIterator[Chunk]:
        """Yield chunks as they arrive. Cancelling the consuming task closes the connection,
        which is how an OpenAI-compatible server is told to stop generating.

        The whole answer, retries and their waits included, must finish within
        answer_timeout and stay under max_answer_chars; a chunk with `wait` set comes
        before each wait to retry."""
        return self._exchange(messages, True, params, self._read_stream)  # no extra hop per chunk

    async def complete(self, messages: list[Message], **params) -> Completion:
        """The answer in one response, under the same deadline, cap and retries as stream()."""
        started = time.monotonic()

        async def read(response: httpx.Response, deadline: "_Deadline", _sent: "_Sent") -> AsyncIterator[Completion]:
            yield await self._read_completion(response, deadline, started)

        return [item async for item in self._exchange(messages, False, params, read)
                if isinstance(item, Completion)][0]

    async def _exchange(self, messages: list[Message], stream: bool, params: dict, read) -> AsyncIterator:
        """The request skeleton stream() and complete() share: one answer_timeout for everything, the
        request, an error response turned into a BackendError, and the retries (with their Retry-After)
        while nothing has reached the caller. read(response, deadline, sent) yields what a 200 response
        holds, noting in `sent` what the caller was given; a Chunk with `wait` comes before each wait."""
        deadline = _Deadline(self.config.answer_timeout)
        attempt = 0
        try:
            while True:
                body = self.body(messages, stream, **params)
                sent = _Sent()
                try:
                    request = self._client.build_request("POST", "chat/completions", json=body)
                    response = await deadline.run(self._client.send(request, stream=True))
                    try:
                        if response.status_code != 200:  # an error page, however long, is cut: still retryable
                            text = await deadline.run(_read_capped(response, _ERROR_BODY_LIMIT))
                            if stream and self._rejects_stream_options(response.status_code, text):
                                continue  # ask again at once without it; not a failure
                            raise self._http_error(response, text, body["model"])
                        async with contextlib.aclosing(read(response, deadline, sent)) as items:
                            async for item in items:
                                yield item
                        return
                    finally:
                        await response.aclose()
                except BackendError as exc:
                    error = exc
                except TimeoutError:
                    error = self._deadline_error()
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    error = self._transport_error(exc, sent.answered)
                if sent.parts:
                    error.partial = "".join(sent.parts)
                wait = None if sent.answered else self._retry_wait(error, attempt, deadline)
                if wait is None:
                    raise self._redacted(error) from None
                yield Chunk(wait=wait)
                await asyncio.sleep(wait.seconds)
                attempt += 1
        finally:
            deadline.close()

    async def _read_stream(self, response: httpx.Response, deadline: "_Deadline",
                           sent: "_Sent") -> AsyncIterator[Chunk]:
        """The chunks of a streamed 200 response, up to max_answer_chars."""
        cap = self.config.max_answer_chars
        size = 0
        events = _SSEDecoder(max_event_bytes=4 * cap + _ERROR_BODY_LIMIT)
        finished = False
        reads = response.aiter_bytes()
        while True:
            # _END after the last read, so an event the server cut before its own blank line counts
            raw = await deadline.run(anext(reads, _END))
            for event in events.feed(raw):
                if event == "[DONE]":
                    return
                chunk = self._parse_chunk(event)
                if chunk.finish_reason:
                    sent.answered = finished = True
                if chunk.text:
                    sent.answered = True
                    if size + len(chunk.text) > cap:
                        if size < cap:
                            sent.parts.append(chunk.text[: cap - size])
                            yield Chunk(sent.parts[-1])
                        raise self._too_large()  # its partial is set by _exchange
                    size += len(chunk.text)
                    sent.parts.append(chunk.text)
                yield chunk
            if raw is _END:
                break
        if not finished:
            raise DisconnectedError(f"{self.name}: the stream ended before the answer was finished")

    async def _read_completion(self, response: httpx.Response, deadline: "_Deadline", started: float) -> Completion:
        """The answer of a non-streamed 200 response (the answer cap applies to answers only)."""
        cap = self.config.max_answer_chars
        raw = await deadline.run(_read_capped(response, 4 * cap + _ERROR_BODY_LIMIT, self._too_large))
        data, choice, text = self._parse_completion(raw)
        if len(text) > cap:
            raise self._too_large(partial=text[:cap])
        total = time.monotonic() - started
        return Completion(text=text, backend=self.name, model=_text_or(data.get("model"), self.model),
                          finish_reason=_text_or(choice.get("finish_reason"), None),
                          usage=_usage(data.get("usage")), started=started, first_token_s=total, total_s=total)

    async def list_models(self) -> list[str]:
        try:
            try:
                response = await self._client.get("models")
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._transport_error(exc, False) from None
            if response.status_code != 200:
                raise self._http_error(response, response.text, self.model)
            try:
                ids = [item["id"] for item in response.json()["data"]]
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise MalformedStreamError(f"{self.name}: malformed /models response: {exc!r}") from None
            if not all(isinstance(i, str) and not _SURROGATE.search(i) for i in ids):
                raise MalformedStreamError(f"{self.name}: malformed /models response: a model id is not text")
            return sorted(ids)
        except BackendError as exc:
            raise self._redacted(exc) from None

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- parsing ----------------------------------------------------------------------------

    def _parse_chunk(self, data: str) -> Chunk:
        """One SSE data payload -> Chunk. Runs once per token, so the common case comes first.

        Anything but text (or null) as the content, a lone surrogate, a JSON nested too
        deep to read: a MalformedStreamError, never an exception of another kind."""
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            raise self._malformed("malformed JSON in stream", data) from None
        try:
            choice = payload["choices"][0]
            text = choice["delta"].get("content")
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):  # no choices (usage, error), or odd ones
            if not isinstance(payload, dict):
                raise self._malformed("unexpected stream event", data) from None
            choices = payload.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices else None
            choice = choice if isinstance(choice, dict) else {}
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            finish = choice.get("finish_reason")
        if text is None:
            text = ""
        elif not isinstance(text, str) or (not text.isascii() and _SURROGATE.search(text)):
            raise self._malformed("delta.content is not text", data)
        if finish is not None and not isinstance(finish, str):
            raise self._malformed("finish_reason is not text", data)
        if "error" in payload or "usage" in payload:
            if error := payload.get("error"):  # OpenRouter, vLLM and llama.cpp report late failures in-stream
                message = error.get("message", error) if isinstance(error, dict) else error
                raise ServerError(f"{self.name}: server error mid-stream: {str(message)[:300]}")
            return Chunk(text, finish, _usage(payload.get("usage")))
        return Chunk(text, finish)

    def _parse_completion(self, raw: str) -> tuple[dict, dict, str]:
        """A non-streamed answer's (payload, choice, text), or a MalformedStreamError."""
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise MalformedStreamError(f"{self.name}: malformed response: {str(exc)[:200]}") from None
        if text is None:
            text = ""
        elif not isinstance(text, str) or _SURROGATE.search(text):
            raise self._malformed("message.content is not text", raw)
        return data, choice, text

    def _malformed(self, what: str, data: str) -> MalformedStreamError:
        return MalformedStreamError(f"{self.name}: malformed stream: {what}: {data[:80]!r}")

    # --- errors and retries -----------------------------------------------------------------

    def _rejects_stream_options(self, status: int, text: str) -> bool:
        """An older server that refuses `stream_options`: stop sending it."""
        if self._stream_options and status in (400, 422) and "stream_options" in text:
            self._stream_options = False
            return True
        return False

    def _http_error(self, response: httpx.Response, text: str, model: str) -> BackendError:
        status = response.status_code
        message, code = _error_detail(text)
        where = f"{self.name} ({self.base_url})"
        retry_after = _retry_after(response.headers)
        if status in (401, 403):
            hint = f"check ${self.config.api_key_env}" if self.config.api_key_env else "set api_key_env in the config"
            return AuthError(f"{where}: authentication failed ({status}): {message} ({hint})", status=status)
        if status in (400, 404) and ("model_not_found" in code or _UNKNOWN_MODEL.search(message)):
            return UnknownModelError(f"{where}: unknown model {model!r}: {message}", status=status)
        if status == 404:
            return BackendError(f"{where}: 404 Not Found: is base_url right (usually ending in /v1)?", status=status)
        if status == 429:
            return RateLimitError(f"{where}: rate limited (429): {message}", status=status, retry_after=retry_after)
        if status >= 500:
            return ServerError(f"{where}: server error ({status}): {message}", status=status, retry_after=retry_after)
        lowered = message.lower()
        if "context" in lowered and ("length" in lowered or "window" in lowered):
            return ContextTooLongError(f"{where}: the conversation is too long for the model: {message}",
                                       status=status)
        return BackendError(f"{where}: request failed ({status}): {message}", status=status)

    def _transport_error(self, exc: Exception, got_text: bool) -> BackendError:
        where = f"{self.name} ({self.base_url})"
        if isinstance(exc, httpx.ConnectTimeout):
            return TimeoutError_(f"{where}: timed out connecting after {self.config.connect_timeout:g} s",
                                 retryable=True)
        if isinstance(exc, httpx.ReadTimeout):
            return TimeoutError_(f"{where}: no data for {self.config.read_timeout:g} s; gave up")
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError_(f"{where}: timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return ConnectionRefusedError_(f"{where}: cannot connect ({exc}); is the server running?")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return DisconnectedError(f"{where}: the connection dropped{' mid-answer' if got_text else ''}")
        return BackendError(f"{where}: {type(exc).__name__}: {exc}")

    def _deadline_error(self) -> DeadlineError:
        return DeadlineError(f"{self.name} ({self.base_url}): no complete answer within "
                             f"{self.config.answer_timeout:g} s (answer_timeout in the config); gave up")

    def _too_large(self, partial: str = "") -> AnswerTooLargeError:
        return AnswerTooLargeError(f"{self.name}: the answer passed {self.config.max_answer_chars:,} characters "
                                   f"(max_answer_chars in the config); stopped it there", partial=partial)

    def _redacted(self, error: BackendError) -> BackendError:
        """The error with every secret we know of out of its message (it may quote a server)."""
        error.message = self._redactor.message(error.message)
        error.args = (error.message,)
        return error

    def _retry_wait(self, error: BackendError, attempt: int, deadline: "_Deadline") -> RetryWait | None:
        """How long to wait before asking again, or None to give up. A wait that would
        outlast answer_timeout gives up at once and says so."""
        if not error.retryable or attempt >= self.config.max_retries:
            return None
        asked = error.retry_after is not None
        delay = error.retry_after if asked else min(0.5 * 2**attempt, 8.0)
        if delay > deadline.left():
            why = "the server asked to wait" if asked else "the next retry is due in"
            error.message += (f"; {why} {delay:g} s, more than the {max(deadline.left(), 0):.0f} s left "
                              f"of answer_timeout ({self.config.answer_timeout:g} s): gave up")
            return None
        return RetryWait(seconds=delay, attempt=attempt + 2, attempts=self.config.max_retries + 1,
                         reason=self._redactor.message(error.message), retry_after=asked)


class _Sent:
    """What one attempt handed the caller: once text or the end has, the answer is never asked for again."""

    def __init__(self) -> None:
        self.parts: list[str] = []  # the text so far (the partial answer of an error)
        self.answered = False


class _Deadline:
    """The time left for one answer. `run` awaits something within it, TimeoutError when out.

    One timer for the whole answer, not one per read (asyncio.timeout per read costs a
    third more CPU on a long stream): when it fires during a read it cancels the reading
    task, and `run` turns that cancellation into TimeoutError. Outside a read it only marks
    the deadline passed; the next read sees that at once."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._fired = False

    def left(self) -> float:
        return self.end - time.monotonic()

    async def run(self, awaitable):
        if self._fired or self.left() <= 0:
            awaitable.close()
            raise TimeoutError
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_later(self.left(), self._fire)
        self._reading = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            # Ours alone (no cancel from the caller pending as well): the deadline passed.
            if self._fired and self._task is not None and self._task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._reading = False

    def _fire(self) -> None:
        self._fired = True
        if self._reading and self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _SSEDecoder:
    """Server-sent events: bytes as they arrive in, the data of each complete event out.

    Lines end only at \\n, \\r\\n or \\r, as the SSE spec says. (httpx's aiter_lines()
    also splits at U+2028, U+0085 and the like, which vLLM and llama.cpp send raw
    inside JSON strings, and it costs a call per line.) Data lines are joined per
    event; comments (":..."), event:/id:/retry: fields and stray blank lines are skipped.
    """

    def __init__(self, max_event_bytes: int = 64 * 1024 * 1024) -> None:
        self.rest = bytearray()  # an incomplete last line, grown in place (no copy per read)
        self.data: list[str] = []  # data lines of the event being read
        self.data_size = 0
        self.max_event_bytes = max_event_bytes  # an event that never ends must not fill the memory

    def feed(self, raw: bytes) -> list[str]:
        # Fast path, taken for almost every token: one whole one-line event in one read.
        if (not self.rest and not self.data and raw.startswith(b"data:") and raw.endswith(b"\n\n")
                and raw.count(b"\n") == 2 and b"\r" not in raw):
            return [raw[5:-2].decode("utf-8", errors="replace").strip()]
        if b"\n" not in raw and b"\r" not in raw and not self.rest.endswith(b"\r"):
            self.rest += raw  # the held line goes on: nothing to split
            self._check_size()
            return []
        buffer = bytes(self.rest) + raw  # one copy per line end, not per read
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # maybe half of a \r\n: wait for the rest
            body = buffer[:-1] if held else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        complete, newline, rest = buffer.rpartition(b"\n")
        self.rest = bytearray(rest)
        if not newline:
            self._check_size()
            return []
        events = []
        for line in complete.decode("utf-8", errors="replace").split("\n"):
            if line.startswith("data:"):
                self.data.append(line[6:] if line.startswith("data: ") else line[5:])
                self.data_size += len(line)
            elif not line and self.data:
                events.append(self.data[0].strip() if len(self.data) == 1 else "\n".join(self.data).strip())
                self.data = []
                self.data_size = 0
        self._check_size()
        return events

    def _check_size(self) -> None:
        if len(self.rest) + self.data_size > self.max_event_bytes:
            raise AnswerTooLargeError(f"one stream event passed {self.max_event_bytes:,} bytes; stopped reading it")


_END = b"\n\n"  # fed after the last read: a blank line ends an event the server cut short


async def _read_capped(response: httpx.Response, limit: int, too_large=None) -> str:
    """The body as text, at most `limit` bytes of it: the rest is dropped, or too_large() raised."""
    data = bytearray()
    async for raw in response.aiter_bytes():
        data += raw
        if len(data) > limit:
            if too_large is not None:
                raise too_large()
            del data[limit:]
            break
    return data.decode("utf-8", errors="replace")


def _error_detail(text: str) -> tuple[str, str]:
    """(message, code) from the error bodies servers send: OpenAI, Ollama and llama.cpp
    {"error": {...}}, vLLM {"message": ..., "code": 404}, LM Studio {"error": "..."},
    FastAPI {"detail": ...}, or plain text."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()[:300], ""
    error = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(error, dict):
        return str(error)[:300], ""
    message = error.get("message") or error.get("detail") or text.strip()
    code = " ".join(str(error.get(key) or "") for key in ("code", "type"))
    return str(message)[:300], code


def _text_or(value, default):
    return value if isinstance(value, str) else default


def _usage(data) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        return Usage(prompt_tokens=int(data.get("prompt_tokens") or 0),
                     completion_tokens=int(data.get("completion_tokens") or 0))
    except (TypeError, ValueError, OverflowError):  # "12", null and 1e999 alike
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or OpenAI's retry-after-ms."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
