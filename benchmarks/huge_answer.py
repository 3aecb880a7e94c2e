"""A huge answer (issue "hostile input": 50 MB took the TUI to 1.7 GB and Esc to 39 s), measured.

The loopback server (tests.support.fake_server, fault "huge": 64 KiB pieces, as fast as it can)
streams an answer of --mb million characters to
  (a) `taskdiv-chat ask` (stdout to a file, the history saved as usual), and
  (b) the chat app run headless (Pilot, 100x30): the message sent, the run waits for the answer's end;
each a new process, whose peak RSS comes from os.wait4 (ru_maxrss). Each runs with the default
max_answer_chars (the answer is cut there) and with the cap raised to 60 MB (the whole answer goes
through), beside a 1 MB answer (the baseline: the same code, an ordinary long answer), plus
(c) the app with the cap raised: Esc pressed once 5 M characters have arrived, seconds until the
screen takes keys again.
The turn is classified by the server (one letter), so no local model loads in any run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/huge_answer.py [--mb 50] [--runs 1] [--skip-tui] [--skip-ask]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAISED_CAP = 60_000_000
ESC_AFTER_CHARS = 5_000_000
TIMEOUT_S = 1800


def responder(chars: int):
    from tests.support.fake_server import Reply

    def respond(body: dict):
        if body["messages"][-1]["content"].startswith("Classify the user prompt"):
            return Reply("G")
        return Reply("big", fault="huge", fault_after=0, huge_chars=chars)

    return respond


def write_config(folder: Path, base_url: str, cap: int | None) -> Path:
    path = folder / "config.toml"
    path.write_text(f'default_backend = "fake"\n[classify]\nmethod = "llm"\n[backends.fake]\nbase_url = "{base_url}"\n'
                    f'model = "test-model"\nmax_retries = 0\ncapable = true\nread_timeout = 600\n'
                    + (f"max_answer_chars = {cap}\n" if cap else ""), encoding="utf-8")
    return path


def run_child(command: list[str], env: dict) -> dict:
    """Wall seconds, peak RSS (MiB), exit code and the last stdout line (the TUI child's JSON) of one run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0, os.SEEK_END)
        size = out.tell()
        out.seek(max(0, size - 4096))
        tail = out.read().decode(errors="replace").strip().splitlines()
        err.seek(0)
        errors = err.read().decode(errors="replace").strip()
    return {"seconds": seconds, "rss_mib": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status),
            "stdout_bytes": size, "last": tail[-1] if tail else "", "stderr": errors[-300:]}


def tui_child(esc: bool) -> None:
    """Run in the child: send one message in the headless app, wait for the answer's end (or press Esc)."""
    from taskdiv_chat.config import load_settings
    from taskdiv_chat.tui.app import TaskdivApp

    async def until(pilot, condition, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {seconds:g} s")
            await pilot.pause(0.01)

    async def run() -> dict:
        app = TaskdivApp(load_settings(None), warm_up=False, new_chat=True)
        result: dict = {}
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.store is not None and getattr(app.screen, "service", None) is not None,
                        120, "chat screen")
            await pilot.pause(0.5)  # as benchmarks/render.py: the screen settles before the first key
            screen = app.screen
            screen.prompt.area.focus()
            screen.prompt.area.load_text("Say a lot")
            started = time.monotonic()
            await pilot.press("enter")
            await until(pilot, lambda: screen.answering or screen.last_answer() is not None, 60, "answer")
            while screen.answering:
                answer = screen.last_answer()
                if esc and answer is not None and answer.body._received >= ESC_AFTER_CHARS:
                    result["received_at_esc"] = answer.body._received
                    pressed = time.monotonic()
                    await pilot.press("escape")
                    await until(pilot, lambda: not screen.answering, TIMEOUT_S, "stop")
                    result["esc_s"] = time.monotonic() - pressed
                    break
                await pilot.pause(0.05)
            result["answer_s"] = time.monotonic() - started
            answer = screen.last_answer()
            result["chars"] = len(answer.current.text) if answer is not None and answer.current else 0
            closing = time.monotonic()
        result["close_s"] = time.monotonic() - closing
        return result

    print(json.dumps(asyncio.run(run())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="the huge answer, in million characters")
    parser.add_argument("--runs", type=int, default=1, help="runs of each case (medians printed)")
    parser.add_argument("--skip-tui", action="store_true")
    parser.add_argument("--skip-ask", action="store_true")
    parser.add_argument("--tui-child", choices=("wait", "esc"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tui_child:
        tui_child(args.tui_child == "esc")
        return 0
    from tests.support.fake_server import FakeOpenAIServer

    huge = int(args.mb * 1_000_000)
    cases = [] if args.skip_ask else [("ask", None, 1_000_000), ("ask", None, huge), ("ask", RAISED_CAP, 1_000_000),
                                      ("ask", RAISED_CAP, huge)]
    if not args.skip_tui:
        cases += [("tui", None, 1_000_000), ("tui", None, huge), ("tui", RAISED_CAP, 1_000_000),
                  ("tui", RAISED_CAP, huge), ("tui-esc", RAISED_CAP, huge)]
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':8} {'cap':>11} {'answer':>11} {'peak RSS':>10} {'wall':>8}  notes")
    for mode, cap, chars in cases:
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(responder(chars)) as server:
                folder = Path(tmp)
                env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "TASKDIV_CONFIG": str(write_config(folder, server.base_url, cap)),
                       "TASKDIV_DATA_DIR": str(folder / "data"), "TASKDIV_CACHE_DIR": str(folder / "cache"),
                       "PYTHONPATH": str(ROOT)}
                if mode == "ask":
                    command = [sys.executable, "-m", "taskdiv_chat", "ask", "Say a lot"]
                else:
                    command = [sys.executable, str(Path(__file__).resolve()), "--tui-child",
                               "esc" if mode == "tui-esc" else "wait"]
                results.append(run_child(command, env))
        rss = statistics.median(r["rss_mib"] for r in results)
        wall = statistics.median(r["seconds"] for r in results)
        last = results[-1]
        if mode == "ask":
            notes = f"exit {last['code']}, {last['stdout_bytes']:,} bytes out"
            if last["stderr"]:
                notes += f"; stderr: {last['stderr'].splitlines()[-1][:90]}"
        else:
            try:
                data = json.loads(last["last"])
                notes = (f"answer shown {data['answer_s']:.1f} s, {data['chars']:,} chars kept, "
                         f"app closed {data['close_s']:.1f} s")
                if "esc_s" in data:
                    notes += f"; Esc at {data['received_at_esc']:,} chars took {data['esc_s']:.2f} s"
            except (ValueError, KeyError):
                notes = f"exit {last['code']}: {last['stderr'][-200:]}"
        print(f"{mode:8} {cap or 'default':>11} {chars:>11,} {rss:>7.0f} MiB {wall:>6.1f} s  {notes}", flush=True)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
