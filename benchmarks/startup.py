"""Time to first paint of `taskdiv-chat` in a real terminal, against a minimal Textual app.

Each run starts the program in a fresh tmux session (100x30) and polls the
screen (capture-pane) until the app's header title appears; both apps are
measured alternately in the same run, and the script prints the medians and
their ratio (target: taskdiv-chat <= 1.3x the minimal app).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/startup.py [--runs 7]

taskdiv-chat runs on its embedded default backend with an empty temporary
config/data dir, exactly as `make run` starts it on a fresh machine. STARTUP_COMMAND=... measures
another command line instead (e.g. a variant under study).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def first_paint(command: str, marker: str, env: dict[str, str], timeout: float = 30.0) -> float:
    """Seconds from launching `command` in tmux until `marker` is on the screen."""
    session = f"bench-{uuid.uuid4().hex[:12]}"
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    started = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"env {env_prefix} {command}"], check=True)
    try:
        while time.monotonic() - started < timeout:
            if marker in _tmux("capture-pane", "-p", "-t", session):
                return time.monotonic() - started
            time.sleep(0.005)
        raise TimeoutError(f"{marker!r} never appeared for {command}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # One idle session keeps the tmux server up: killing the last session stops the server, and a
    # session started right then can fail.
    keepalive = f"bench-keepalive-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", keepalive, "sleep 3600"], check=True)
    try:
        times = measure(args.runs)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", keepalive], capture_output=True)
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:14s} median {med[name]:.3f} s  (runs: {', '.join(f'{v:.3f}' for v in values)})")
    ratio = med["taskdiv-chat"] / med["minimal"]
    print(f"ratio taskdiv-chat / minimal: {ratio:.2f}  (target <= 1.30: {'met' if ratio <= 1.3 else 'NOT met'})")
    return 0


def measure(runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"TERM": "xterm-256color", "HF_HUB_OFFLINE": "1", "TEXTUAL": "",
               "TASKDIV_CONFIG": f"{tmp}/config/config.toml", "TASKDIV_DATA_DIR": f"{tmp}/data",
               "TASKDIV_CACHE_DIR": f"{tmp}/cache"}
        apps = {
            "minimal": (f"{PY} {ROOT / 'benchmarks' / 'minimal_app.py'}", "minimal-baseline"),
            "taskdiv-chat": (os.environ.get("STARTUP_COMMAND", f"{PY} -m taskdiv_chat"), "taskdiv-chat"),
        }
        # One untimed start each, so both read their files from the page cache.
        for command, marker in apps.values():
            first_paint(command, marker, env)
        times: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(runs):
            for name, (command, marker) in apps.items():
                times[name].append(first_paint(command, marker, env))
    return times


if __name__ == "__main__":
    raise SystemExit(main())
