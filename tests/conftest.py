"""Test isolation: no network beyond loopback, no developer config or data."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address) -> None:
    if isinstance(address, tuple):
        host = str(address[0])
        if not (host.startswith("127.") or host in ("::1", "localhost", "0.0.0.0")):
            raise OSError(f"network blocked in tests: {address}")


def _guarded_connect(self, address):
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own config/data/cache dirs; the developer's are never read."""
    for var in list(os.environ):
        if var.startswith("TASKDIV_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("TASKDIV_CONFIG", str(tmp_path / "config" / "config.toml"))
    monkeypatch.setenv("TASKDIV_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TASKDIV_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path


@pytest.fixture
def fake_server():
    """A scripted OpenAI-compatible server on loopback; set .responder per test."""
    from tests.support.fake_server import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_backend_settings(fake_server):
    """Settings whose default backend is the loopback server."""
    from taskdiv_chat.config import BackendConfig, Settings

    return Settings(default_backend="fake", backends={
        "fake": BackendConfig(base_url=fake_server.base_url, model="test-model", max_retries=2,
                              read_timeout=5, connect_timeout=2, capable=True),  # trusted: no self-check
    })
