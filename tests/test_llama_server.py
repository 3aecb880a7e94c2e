"""Our client against a real server we did not write: llama-cpp-python's own
OpenAI-compatible server (`python -m llama_cpp.server`) running the embedded model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest

from taskdiv_chat.backends.base import AuthError, collect
from taskdiv_chat.backends.local import model_path
from taskdiv_chat.backends.openai import OpenAIBackend
from taskdiv_chat.config import BackendConfig
from tests.support import free_port

pytestmark = pytest.mark.slow

KEY = "sk-llama-server-test"
HELLO = [{"role": "user", "content": "Say hello to Ada."}]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """The server on a free loopback port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "smollm2-135m",
             "--api_key", KEY],
            stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up after 90 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def client(llama_server, monkeypatch):
    monkeypatch.setenv("LLAMA_SERVER_TEST_KEY", KEY)
    backend = OpenAIBackend("llama-server", BackendConfig(
        base_url=llama_server, model="smollm2-135m", api_key_env="LLAMA_SERVER_TEST_KEY", read_timeout=60))
    yield backend
    await backend.aclose()


async def test_streams_a_chat_completion(client):
    deltas: list[str] = []
    completion = await collect(client, HELLO, on_text=deltas.append, max_tokens=8, seed=1)
    assert completion.text == "".join(deltas)
    assert completion.text.strip()
    assert 1 <= len(deltas) <= 8
    assert completion.finish_reason in ("stop", "length")
    assert 0 < completion.first_token_s <= completion.total_s


async def test_lists_its_model(client):
    assert await client.list_models() == ["smollm2-135m"]


async def test_complete_with_usage(client):
    completion = await client.complete(HELLO, max_tokens=4, seed=1)
    assert completion.text
    assert completion.usage.completion_tokens <= 4
    assert completion.usage.prompt_tokens > 5
    assert completion.model == "smollm2-135m"


async def test_wrong_key_is_auth_error(llama_server):
    backend = OpenAIBackend("llama-server", BackendConfig(base_url=llama_server, model="smollm2-135m"))
    try:
        with pytest.raises(AuthError) as caught:
            await collect(backend, HELLO, max_tokens=4)
        assert caught.value.status == 401
        assert "Invalid API key" in caught.value.message
    finally:
        await backend.aclose()


async def test_cancel_mid_stream_then_ask_again(client):
    deltas: list[str] = []
    task = asyncio.create_task(collect(client, HELLO, on_text=deltas.append, max_tokens=300, seed=2))
    while not deltas:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deltas) < 300
    again = await collect(client, HELLO, max_tokens=4, seed=1)
    assert again.text
