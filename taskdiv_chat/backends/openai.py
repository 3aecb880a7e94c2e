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
from .base import (
    AuthError,
    BackendError,
    Chunk,
    Completion,
    ConnectionRefusedError_,
    ContextTooLongError,
    DisconnectedError,
    MalformedStreamError,
    Message,
    RateLimitError,
    ServerError,
    TimeoutError_,
    UnknownModelError,
    Usage,
)

_MAX_WAIT = 30.0  # never sleep longer than this between retries, whatever Retry-After says
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
        if key := config.api_key():  # read from the environment at start, kept in memory only
            headers["Authorization"] = f"Bearer {key}"
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

    async def stream(self, messages: list[Message], **params) -> AsyncIterator[Chunk]:
        """Yield chunks as they arrive. Cancelling the consuming task closes the connection,
        which is how an OpenAI-compatible server is told to stop generating."""
        attempt = 0
        while True:
            body = self.body(messages, True, **params)
            parts: list[str] = []
            answered = False  # once text or the end has reached the caller, never ask again
            try:
                async with self._client.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        if self._rejects_stream_options(response):
                            continue  # ask again at once without it; not a failure
                        raise self._http_error(response, body["model"])
                    events = _SSEDecoder()
                    finished = False
                    async with contextlib.aclosing(_then_end(response.aiter_bytes())) as reads:
                        async for raw in reads:
                            for event in events.feed(raw):
                                if event == "[DONE]":
                                    return
                                chunk = self._parse_chunk(event)
                                if chunk.text:
                                    parts.append(chunk.text)
                                    answered = True
                                if chunk.finish_reason:
                                    answered = finished = True
                                yield chunk
                    if not finished:
                        raise DisconnectedError(f"{self.name}: the stream ended before the answer was finished")
                return
            except BackendError as exc:
                error = exc
            except httpx.HTTPError as exc:
                error = self._transport_error(exc, answered)
            error.partial = "".join(parts)
            if answered or not await self._should_retry(error, attempt):
                raise error from None
            attempt += 1

    async def complete(self, messages: list[Message], **params) -> Completion:
        started = time.monotonic()
        attempt = 0
        while True:
            body = self.body(messages, False, **params)
            try:
                response = await self._client.post("chat/completions", json=body)
                if response.status_code != 200:
                    raise self._http_error(response, body["model"])
                try:
                    data = response.json()
                    choice = data["choices"][0]
                    text = choice["message"].get("content") or ""
                except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                    raise MalformedStreamError(f"{self.name}: malformed response: {exc!r}") from None
                total = time.monotonic() - started
                return Completion(text=text, backend=self.name, model=data.get("model") or self.model,
                                  finish_reason=choice.get("finish_reason"), usage=_usage(data.get("usage")),
                                  started=started, first_token_s=total, total_s=total)
            except BackendError as exc:
                error = exc
            except httpx.HTTPError as exc:
                error = self._transport_error(exc, False)
            if not await self._should_retry(error, attempt):
                raise error from None
            attempt += 1

    async def list_models(self) -> list[str]:
        try:
            response = await self._client.get("models")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, False) from None
        if response.status_code != 200:
            raise self._http_error(response, self.model)
        try:
            return sorted(item["id"] for item in response.json()["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedStreamError(f"{self.name}: malformed /models response: {exc!r}") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- SSE --------------------------------------------------------------------------------

    def _parse_chunk(self, data: str) -> Chunk:
        """One SSE data payload -> Chunk. Runs once per token, so the common case comes first."""
        try:
            payload = json.loads(data)
        except ValueError:
            raise MalformedStreamError(f"{self.name}: malformed JSON in stream: {data[:80]!r}") from None
        try:
            choice = payload["choices"][0]
            text = choice["delta"].get("content") or ""
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):  # no choices (usage, error), or odd ones
            if not isinstance(payload, dict):
                raise MalformedStreamError(f"{self.name}: unexpected stream event: {data[:80]!r}") from None
            choices = payload.get("choices")
            choice = choices[0] if isinstance(choices, list) and choices else None
            choice = choice if isinstance(choice, dict) else {}
            delta = choice.get("delta")
            text = (delta.get("content") if isinstance(delta, dict) else None) or ""
            finish = choice.get("finish_reason")
        if "error" in payload or "usage" in payload:
            if error := payload.get("error"):  # OpenRouter, vLLM and llama.cpp report late failures in-stream
                message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
                raise ServerError(f"{self.name}: server error mid-stream: {message}")
            return Chunk(text, finish, _usage(payload.get("usage")))
        return Chunk(text, finish)

    # --- errors and retries -----------------------------------------------------------------

    def _rejects_stream_options(self, response: httpx.Response) -> bool:
        """An older server that refuses `stream_options`: stop sending it."""
        if self._stream_options and response.status_code in (400, 422) and "stream_options" in response.text:
            self._stream_options = False
            return True
        return False

    def _http_error(self, response: httpx.Response, model: str) -> BackendError:
        status = response.status_code
        message, code = _error_detail(response)
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

    def _transport_error(self, exc: httpx.HTTPError, got_text: bool) -> BackendError:
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

    async def _should_retry(self, error: BackendError, attempt: int) -> bool:
        if not error.retryable or attempt >= self.config.max_retries:
            return False
        delay = error.retry_after
        if delay is None:
            delay = min(0.5 * 2**attempt, 8.0)
        await asyncio.sleep(min(delay, _MAX_WAIT))
        return True


class _SSEDecoder:
    """Server-sent events: bytes as they arrive in, the data of each complete event out.

    Lines end only at \\n, \\r\\n or \\r, as the SSE spec says. (httpx's aiter_lines()
    also splits at U+2028, U+0085 and the like, which vLLM and llama.cpp send raw
    inside JSON strings, and it costs a call per line.) Data lines are joined per
    event; comments (":..."), event:/id:/retry: fields and stray blank lines are skipped.
    """

    def __init__(self) -> None:
        self.rest = b""  # an incomplete last line
        self.data: list[str] = []  # data lines of the event being read

    def feed(self, raw: bytes) -> list[str]:
        # Fast path, taken for almost every token: one whole one-line event in one read.
        if (not self.rest and not self.data and raw.startswith(b"data:") and raw.endswith(b"\n\n")
                and raw.count(b"\n") == 2 and b"\r" not in raw):
            return [raw[5:-2].decode("utf-8", errors="replace").strip()]
        buffer = self.rest + raw
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # maybe half of a \r\n: wait for the rest
            body = buffer[:-1] if held else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if held else b"")
        complete, newline, self.rest = buffer.rpartition(b"\n")
        if not newline:
            return []
        events = []
        for line in complete.decode("utf-8", errors="replace").split("\n"):
            if line.startswith("data:"):
                self.data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif not line and self.data:
                events.append(self.data[0].strip() if len(self.data) == 1 else "\n".join(self.data).strip())
                self.data = []
        return events


_END = b"\n\n"


async def _then_end(reads: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The reads, then a blank line, so an event the server cut before its own counts."""
    async for raw in reads:
        yield raw
    yield _END


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(message, code) from the error bodies servers send: OpenAI, Ollama and llama.cpp
    {"error": {...}}, vLLM {"message": ..., "code": 404}, LM Studio {"error": "..."},
    FastAPI {"detail": ...}, or plain text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300], ""
    error = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(error, dict):
        return str(error)[:300], ""
    message = error.get("message") or error.get("detail") or response.text.strip()
    code = " ".join(str(error.get(key) or "") for key in ("code", "type"))
    return str(message)[:300], code


def _usage(data) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        return Usage(prompt_tokens=int(data.get("prompt_tokens") or 0),
                     completion_tokens=int(data.get("completion_tokens") or 0))
    except (TypeError, ValueError):
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
