"""Async client for any OpenAI-compatible chat-completions server (OpenAI, Ollama /v1,
vLLM, llama.cpp's server, LM Studio, OpenRouter), on httpx.

Retries (429/5xx/connection errors, honouring Retry-After) happen only before the
first token arrives: a half-streamed answer is never requested twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
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
        attempt = 0
        while True:
            body = self.body(messages, True, **params)
            got_text = False
            parts: list[str] = []
            try:
                async with self._client.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise self._http_error(response)
                    async for chunk in self._events(response, parts):
                        if chunk.text:
                            got_text = True
                        yield chunk
                return
            except BackendError as exc:
                exc.partial = "".join(parts)
                if got_text or not await self._should_retry(exc, attempt):
                    raise
            except httpx.HTTPError as exc:
                error = self._transport_error(exc, got_text)
                error.partial = "".join(parts)
                if got_text or not await self._should_retry(error, attempt):
                    raise error from None
            attempt += 1

    async def complete(self, messages: list[Message], **params) -> Completion:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = await self._client.post("chat/completions", json=self.body(messages, False, **params))
                if response.status_code != 200:
                    raise self._http_error(response)
                try:
                    data = response.json()
                    choice = data["choices"][0]
                    text = choice["message"].get("content") or ""
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise MalformedStreamError(f"{self.name}: malformed response: {exc}") from None
                total = time.monotonic() - started
                return Completion(text=text, backend=self.name, model=data.get("model") or self.model,
                                  finish_reason=choice.get("finish_reason"), usage=_usage(data.get("usage")),
                                  started=started, first_token_s=total, total_s=total)
            except BackendError as exc:
                if not await self._should_retry(exc, attempt):
                    raise
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
            raise self._http_error(response)
        try:
            return sorted(item["id"] for item in response.json()["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedStreamError(f"{self.name}: malformed /models response: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- SSE --------------------------------------------------------------------------------

    async def _events(self, response: httpx.Response, parts: list[str]) -> AsyncIterator[Chunk]:
        """Parse the SSE stream: data lines (joined per event), comments skipped, [DONE] ends it."""
        data_lines: list[str] = []
        finished = False
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data_lines.append(line[5:].lstrip(" ") if len(line) > 5 else "")
                continue
            if line or not data_lines:  # comments (":..."), event:/id:/retry: fields, stray blanks
                continue
            data, data_lines = "\n".join(data_lines), []
            if data.strip() == "[DONE]":
                return
            chunk = self._parse_chunk(data)
            if chunk.finish_reason:
                finished = True
            if chunk.text:
                parts.append(chunk.text)
            yield chunk
        if data_lines and data_lines[0].strip() != "[DONE]":  # last event without its blank line
            chunk = self._parse_chunk("\n".join(data_lines))
            if chunk.text:
                parts.append(chunk.text)
            yield chunk
            finished = finished or bool(chunk.finish_reason)
        if not finished:
            raise DisconnectedError(f"{self.name}: the stream ended before the answer was finished")

    def _parse_chunk(self, data: str) -> Chunk:
        try:
            payload = json.loads(data)
        except ValueError:
            raise MalformedStreamError(f"{self.name}: malformed JSON in stream: {data[:80]!r}") from None
        if not isinstance(payload, dict):
            raise MalformedStreamError(f"{self.name}: unexpected stream event: {data[:80]!r}")
        if "error" in payload:  # some servers report errors inside the stream
            error = payload["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise ServerError(f"{self.name}: server error mid-stream: {message}")
        choices = payload.get("choices") or []
        text, finish = "", None
        if choices:
            choice = choices[0]
            text = (choice.get("delta") or {}).get("content") or ""
            finish = choice.get("finish_reason")
        return Chunk(text=text, finish_reason=finish, usage=_usage(payload.get("usage")))

    # --- errors and retries -----------------------------------------------------------------

    def _http_error(self, response: httpx.Response) -> BackendError:
        status = response.status_code
        try:
            error = response.json().get("error", {})
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            code = (error.get("code") or "") if isinstance(error, dict) else ""
        except (ValueError, AttributeError):
            message, code = response.text[:200], ""
        where = f"{self.name} ({self.base_url})"
        if status in (401, 403):
            hint = f"check ${self.config.api_key_env}" if self.config.api_key_env else "set api_key_env in the config"
            error = AuthError(f"{where}: authentication failed ({status}): {message} ({hint})", status=status)
        elif status == 404 and ("model" in code or "model" in message.lower()):
            error = UnknownModelError(f"{where}: unknown model {self.model!r}: {message}", status=status)
        elif status == 404:
            error = BackendError(f"{where}: 404 Not Found: is base_url right (usually ending in /v1)?", status=status)
        elif status == 429:
            error = RateLimitError(f"{where}: rate limited (429): {message}", status=status)
        elif status >= 500:
            error = ServerError(f"{where}: server error ({status}): {message}", status=status)
        elif "stream_options" in message and self._stream_options:
            self._stream_options = False  # an older server: retry once without it
            error = ServerError(f"{where}: server rejected stream_options", status=status)
        elif "context" in message.lower() and ("length" in message.lower() or "window" in message.lower()):
            error = ContextTooLongError(f"{where}: the conversation is too long for the model: {message}", status=status)
        else:
            error = BackendError(f"{where}: request failed ({status}): {message}", status=status)
        error.retry_after = _retry_after(response.headers.get("retry-after"))
        return error

    def _transport_error(self, exc: httpx.HTTPError, got_text: bool) -> BackendError:
        where = f"{self.name} ({self.base_url})"
        if isinstance(exc, httpx.ConnectTimeout):
            return TimeoutError_(f"{where}: timed out connecting after {self.config.connect_timeout:g} s")
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError_(f"{where}: no data for {self.config.read_timeout:g} s; gave up")
        if isinstance(exc, httpx.ConnectError):
            return ConnectionRefusedError_(f"{where}: cannot connect ({exc}); is the server running?")
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return DisconnectedError(f"{where}: the connection dropped{' mid-answer' if got_text else ''}")
        return BackendError(f"{where}: {type(exc).__name__}: {exc}")

    async def _should_retry(self, error: BackendError, attempt: int) -> bool:
        if not error.retryable or attempt >= self.config.max_retries:
            return False
        delay = getattr(error, "retry_after", None)
        if delay is None:
            delay = min(0.5 * 2**attempt, 8.0)
        await asyncio.sleep(min(delay, _MAX_WAIT))
        return True


def _usage(data) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(prompt_tokens=int(data.get("prompt_tokens") or 0),
                 completion_tokens=int(data.get("completion_tokens") or 0))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
