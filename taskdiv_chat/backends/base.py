"""What every chat backend speaks: messages in, a stream of text deltas out, typed errors."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol, TypedDict


class Message(TypedDict):
    role: str  # system | user | assistant
    content: str


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Chunk:
    """One piece of a streamed answer: text, and on the last piece the finish reason/usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class Completion:
    """A whole answer, streamed or not, with what the UI and the store show about it."""

    text: str
    backend: str
    model: str
    finish_reason: str | None = None  # stop | length | cancelled | error
    usage: Usage | None = None
    started: float = field(default_factory=time.monotonic)
    first_token_s: float | None = None  # seconds from request to first text
    total_s: float | None = None

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "backend": self.backend,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": None if self.usage is None else {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "timings": {"first_token_s": self.first_token_s, "total_s": self.total_s},
        }


class BackendError(Exception):
    """A failure the UI can show as is. `partial` keeps any text already received."""

    kind = "error"
    retryable = False  # worth asking again, if nothing has been shown yet

    def __init__(self, message: str, *, partial: str = "", status: int | None = None,
                 retry_after: float | None = None, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.partial = partial
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class AuthError(BackendError):
    kind = "auth"


class UnknownModelError(BackendError):
    kind = "unknown-model"


class RateLimitError(BackendError):
    kind = "rate-limit"
    retryable = True


class ServerError(BackendError):
    kind = "server"
    retryable = True


class TimeoutError_(BackendError):
    # Retried only when connecting timed out: a read timeout means a slow or stuck
    # model, and asking again would only queue a second copy of the same work.
    kind = "timeout"


class MalformedStreamError(BackendError):
    kind = "malformed-stream"


class ConnectionRefusedError_(BackendError):
    kind = "connection"
    retryable = True


class DisconnectedError(BackendError):
    kind = "disconnected"
    retryable = True  # only ever retried before the first token


class ContextTooLongError(BackendError):
    kind = "context"


class Backend(Protocol):
    name: str
    model: str
    context_window: int

    def stream(self, messages: list[Message], **params) -> AsyncIterator[Chunk]:
        """Yield chunks; cancelling the consuming task stops generation."""
        ...

    async def complete(self, messages: list[Message], **params) -> Completion: ...

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


async def collect(backend: Backend, messages: list[Message], on_text=None, **params) -> Completion:
    """Stream an answer into a Completion, calling on_text(delta) as text arrives.

    On error the BackendError carries the text received so far in .partial.
    Cancelling the calling task stops the stream and closes the connection; the
    text received until then has already gone to on_text.
    """
    result = Completion(text="", backend=backend.name, model=backend.model)
    parts: list[str] = []
    try:
        async with contextlib.aclosing(backend.stream(messages, **params)) as chunks:
            async for chunk in chunks:
                if chunk.text:
                    if result.first_token_s is None:
                        result.first_token_s = time.monotonic() - result.started
                    parts.append(chunk.text)
                    if on_text:
                        on_text(chunk.text)
                if chunk.finish_reason:
                    result.finish_reason = chunk.finish_reason
                if chunk.usage:
                    result.usage = chunk.usage
    except BackendError as exc:
        exc.partial = "".join(parts) or exc.partial
        raise
    finally:
        result.text = "".join(parts)
        result.total_s = time.monotonic() - result.started
    return result
