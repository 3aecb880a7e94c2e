"""Helpers shared by the tests (and the benchmarks): the scripted loopback server, config files, CLI runs.

UI helpers (Pilot waits, a scripted model for the app) are in tests.support.pilot, so that the
core's tests never import Textual.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def write_config(text: str) -> Path:
    """Write the config where the isolated TASKDIV_CONFIG points (conftest)."""
    path = Path(os.environ["TASKDIV_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fake_config(server, extra: str = "") -> Path:
    """A config whose default backend is the loopback server; `extra` lines go into its table."""
    return write_config(f'default_backend = "fake"\n[backends.fake]\nbase_url = "{server.base_url}"\n'
                        f'model = "test-model"\nmax_retries = 0\ncapable = true\n{extra}')  # trusted: no self-check


def run_cli(*args: str, stdin: str | None = None, env: dict | None = None, timeout: float = 120):
    """`taskdiv-chat ARGS...` in a child process (this interpreter), output captured."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "taskdiv_chat", *args], input=stdin, capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def python_output(code: str) -> str:
    """What `code` prints in a fresh interpreter (nothing imported yet), which must exit cleanly."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
