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


@dataclass(frozen=True)
class RetryWait:
    """The client is about to wait before asking again (a 429/5xx, a dropped connection)."""

    seconds: float
    attempt: int  # the attempt about to be made: 2 for the first retry
    attempts: int  # at most this many in all
    reason: str  # the error that made us wait, already phrased for the user
    retry_after: bool  # the server asked for this wait (Retry-After), not our own backoff

    def describe(self) -> str:
        why = "as the server asked (Retry-After)" if self.retry_after else "before retrying"
        return f"{self.reason}; waiting {self.seconds:.3g} s {why}, then attempt {self.attempt} of {self.attempts}"


@dataclass(slots=True)
class Chunk:
    """One piece of a streamed answer: text, and on the last piece the finish reason/usage.

    A chunk with `wait` set carries no text: it tells the consumer that the client is
    about to sleep before retrying, so a UI can say so instead of looking stuck."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    wait: RetryWait | None = None


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


class DeadlineError(BackendError):
    """The answer took longer than the backend's answer_timeout, all retries included."""

    kind = "deadline"


class AnswerTooLargeError(BackendError):
    """The answer grew past the backend's max_answer_chars; the text up to the cap is kept."""

    kind = "too-large"


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


async def collect(backend: Backend, messages: list[Message], on_text=None, on_wait=None, **params) -> Completion:
    """Stream an answer into a Completion, calling on_text(delta) as text arrives and
    on_wait(RetryWait) before the client sleeps to retry.

    On error the BackendError carries the text received so far in .partial.
    Cancelling the calling task stops the stream and closes the connection; the
    text received until then has already gone to on_text.
    """
    result = Completion(text="", backend=backend.name, model=backend.model)
    parts: list[str] = []
    try:
        async with contextlib.aclosing(backend.stream(messages, **params)) as chunks:
            async for chunk in chunks:
                if chunk.wait is not None and on_wait:
                    on_wait(chunk.wait)
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
