"""Start-up of `taskdiv-chat` in a real terminal, side by side with a minimal Textual app.

Each run starts the program in a fresh tmux session (120x40) and polls the screen
(capture-pane) for:
  - first paint: the header title is on screen;
  - fully ready: the chat's status bar is up ("regen: ...") and no longer says
    "warming up" (the classifier and embedding model are loaded);
  - idle RSS: resident memory of the process 2 s after it is fully ready;
  - CPU seconds the process used until fully ready (what the wall time approaches
    on idle cores, less what runs in parallel; a busy machine inflates only the wall time).
Both apps are measured alternately in the same run (for the minimal app, first paint
is fully ready); the script prints medians and ratios.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/startup.py [--runs 7] [--first-run] [--backend server|embedded]

--backend server (default): default_backend is a loopback OpenAI-protocol server started
here; embedded: the shipped llama.cpp model, which the warm-up also loads.
--first-run: every start gets empty config, data and cache dirs (as on a fresh machine);
otherwise they are shared, and one untimed start fills them first.
Targets (issue 14): first paint <= 1.3x the minimal app; fully ready <= 3 s (warm) and
<= 5 s (first run); idle RSS <= 250 MiB with a server backend.
STARTUP_COMMAND=... measures another command line instead (e.g. a variant under study).
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
sys.path.insert(0, str(ROOT))
PY = sys.executable
SIZE = ("120", "40")
SETTLE = 2.0  # seconds idle after fully ready before reading the RSS


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def _cpu_and_rss(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024
    return cpu, rss


def start(command: str, paint: str, ready, env: dict[str, str],
          timeout: float = 60.0) -> tuple[float, float, float, float]:
    """(first paint s, fully ready s, idle RSS MiB, CPU s used until fully ready) of `command`:
    `paint` is a text on its first frame, ready(screen text) says it is fully ready."""
    session = f"bench-{uuid.uuid4().hex[:12]}"
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    started = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", SIZE[0], "-y", SIZE[1],
                    f"exec env {env_prefix} {command}"], check=True)
    painted = None
    try:
        while time.monotonic() - started < timeout:
            screen = _tmux("capture-pane", "-p", "-t", session)
            now = time.monotonic() - started
            if painted is None and paint in screen:
                painted = now
            if painted is not None and ready(screen):
                pid = int(_tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())  # `exec`: the app
                cpu, _ = _cpu_and_rss(pid)
                time.sleep(SETTLE)
                return painted, now, _cpu_and_rss(pid)[1], cpu
            time.sleep(0.005)
        raise TimeoutError(f"not ready after {timeout} s: {command}\n{screen}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def chat_ready(screen: str) -> bool:
    return "regen:" in screen and "warming up" not in screen


def write_config(path: Path, backend: str, base_url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if backend == "server":
        path.write_text(f'default_backend = "bench"\n[backends.bench]\nbase_url = "{base_url}"\n'
                        f'model = "test-model"\n', encoding="utf-8")
    else:
        path.write_text("", encoding="utf-8")  # the built-in default: the embedded model


def measure(runs: int, first_run: bool, backend: str, base_url: str) -> dict[str, list[tuple[float, float, float, float]]]:
    apps = {
        "minimal": (f"{PY} {ROOT / 'benchmarks' / 'minimal_app.py'}", "minimal-baseline",
                    lambda screen: "minimal-baseline" in screen),
        "taskdiv-chat": (os.environ.get("STARTUP_COMMAND", f"{PY} -m taskdiv_chat"), "taskdiv-chat", chat_ready),
    }
    with tempfile.TemporaryDirectory() as tmp:
        def dirs(name: str) -> dict[str, str]:
            base = Path(tmp) / name
            write_config(base / "config" / "config.toml", backend, base_url)
            return {"TASKDIV_CONFIG": f"{base}/config/config.toml", "TASKDIV_DATA_DIR": f"{base}/data",
                    "TASKDIV_CACHE_DIR": f"{base}/cache"}

        # PYTHONPATH: this checkout's code (tmux gives its sessions the tmux server's environment, and the
        # editable install may point at another checkout).
        # PYTHONDONTWRITEBYTECODE emptied: bytecode is written, as by pip's install and by any start of a
        # checkout. Set on a machine, every start compiled this checkout's modules from source again (~10 ms
        # before the first paint), while Textual's, in site-packages, had been compiled when installed.
        common = {"TERM": "xterm-256color", "HF_HUB_OFFLINE": "1", "TEXTUAL": "", "PYTHONPATH": str(ROOT),
                  "PYTHONDONTWRITEBYTECODE": ""}
        shared = dirs("shared")
        # One untimed start each: files in the page cache, and (unless --first-run) the caches filled.
        for command, paint, ready in apps.values():
            start(command, paint, ready, {**common, **shared})
        times: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in apps}
        for run in range(runs):
            env = {**common, **(dirs(f"run{run}") if first_run else shared)}
            for name, (command, paint, ready) in apps.items():
                times[name].append(start(command, paint, ready, env))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--first-run", action="store_true", help="empty config/data/cache dirs at every start")
    parser.add_argument("--backend", choices=("server", "embedded"), default="server")
    args = parser.parse_args()
    from tests.support.fake_server import FakeOpenAIServer

    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"backend {args.backend}, {'first run' if args.first_run else 'warm cache'}, {SIZE[0]}x{SIZE[1]}")
    # One idle session keeps the tmux server up: killing the last session stops the server, and a
    # session started right then can fail.
    keepalive = f"bench-keepalive-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", keepalive, "sleep 3600"], check=True)
    try:
        with FakeOpenAIServer() as server:
            times = measure(args.runs, args.first_run, args.backend, server.base_url)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", keepalive], capture_output=True)
    med = {name: [statistics.median(v[i] for v in values) for i in range(4)] for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:13s} first paint {med[name][0]:.3f} s, fully ready {med[name][1]:.3f} s, "
              f"idle RSS {med[name][2]:.0f} MiB, CPU until ready {med[name][3]:.2f} s  "
              f"(ready runs: {', '.join(f'{v[1]:.2f}' for v in values)})")
    paint, ready, rss = (med["taskdiv-chat"][i] / med["minimal"][i] for i in range(3))
    ready_target = 5.0 if args.first_run else 3.0
    print(f"ratios taskdiv-chat / minimal: first paint {paint:.2f} (target <= 1.30: {'met' if paint <= 1.3 else 'NOT met'}), "
          f"fully ready {ready:.2f}, idle RSS {rss:.2f}")
    print(f"fully ready {med['taskdiv-chat'][1]:.2f} s (target <= {ready_target:.0f} s: "
          f"{'met' if med['taskdiv-chat'][1] <= ready_target else 'NOT met'})", end="")
    if args.backend == "server":
        print(f"; idle RSS {med['taskdiv-chat'][2]:.0f} MiB (target <= 250: "
              f"{'met' if med['taskdiv-chat'][2] <= 250 else 'NOT met'})")
    else:
        print(f"; idle RSS with the embedded model loaded {med['taskdiv-chat'][2]:.0f} MiB (no target)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
