"""The embedded backend, for real: SmolLM2-135M through llama.cpp, a few tokens at a time."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from taskdiv_chat.backends import make_backend
from taskdiv_chat.backends.base import ContextTooLongError, collect
from taskdiv_chat.backends.local import LocalBackend, default_threads, model_path
from taskdiv_chat.config import BackendConfig, Settings

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello to Ada."}]


@pytest.fixture(scope="module")
def local() -> LocalBackend:
    backend = LocalBackend("local", BackendConfig(kind="local", context_window=1024, max_tokens=512))
    backend.load()
    return backend


def generation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llama-generate"]


def test_model_file_ships_with_the_package():
    path = model_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    assert default_threads() >= 1


def test_default_settings_give_the_embedded_backend():
    backend = make_backend(Settings())
    assert isinstance(backend, LocalBackend)
    assert backend.model == "SmolLM2-135M-Instruct"


async def test_streams_a_few_tokens(local):
    deltas: list[str] = []
    completion = await collect(local, HELLO, on_text=deltas.append, max_tokens=8, seed=1)
    assert completion.text == "".join(deltas)
    assert completion.text.strip()
    assert 1 <= len(deltas) <= 8
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens == len(deltas)
    # Our prompt count includes the chat template exactly as llama.cpp builds it.
    reported = local.load().create_chat_completion(messages=HELLO, max_tokens=1)["usage"]["prompt_tokens"]
    assert completion.usage.prompt_tokens == reported
    assert 0 < completion.first_token_s <= completion.total_s
    assert await local.list_models() == ["SmolLM2-135M-Instruct"]


async def test_same_seed_same_answer(local):
    first = await local.complete(HELLO, max_tokens=8, seed=42, temperature=0.9)
    second = await local.complete(HELLO, max_tokens=8, seed=42, temperature=0.9)
    assert first.text == second.text
    assert first.text


async def test_without_a_seed_each_request_is_a_fresh_sample(local):
    # The `temperature` strategy relies on this: a resample must not repeat the last answer.
    prompt = [{"role": "user", "content": "Name a country in Africa."}]
    texts = {(await local.complete(prompt, max_tokens=20, temperature=1.0)).text for _ in range(3)}
    assert len(texts) >= 2


async def test_cancel_stops_generation(local):
    deltas: list[str] = []
    task = asyncio.create_task(collect(local, HELLO, on_text=deltas.append, max_tokens=400, seed=3,
                                       stop=[]))
    while not deltas:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker notices at its next token and ends; nothing keeps generating behind our back.
    deadline = time.monotonic() + 20
    while generation_threads() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not generation_threads()
    assert len(deltas) < 400
    # And the model is free for the next answer.
    assert (await local.complete(HELLO, max_tokens=4, seed=1)).text


async def test_too_long_a_conversation_is_refused_clearly(local):
    long = [{"role": "user", "content": "rain " * 1500}]
    with pytest.raises(ContextTooLongError) as caught:
        await collect(local, long)
    assert "1024-token context" in caught.value.message
    assert caught.value.partial == ""
