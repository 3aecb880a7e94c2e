"""Esc during a huge burst: seconds from the key press to the answer stopped on screen.

Runs the real app (headless, 100x30) against the loopback server (its own process,
as fast as it sends) streaming a 500,000-character and a 5 MB answer in 64-character
chunks, presses Esc RUNNING_FOR seconds after the answer starts, and measures until the
app has handled AnswerDone (the stream cancelled, the footer saying it was stopped, the
input free), and until the partial text is laid out too. Each run checks that the partial
answer is kept: what the answer shows is what the store holds, cut-off/cancelled (or, if
every chunk had arrived before Esc, done). Target: Esc to stopped well under 0.3 s.
ESC_AFTER=0.05: seconds of streaming before Esc.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/esc.py [--runs 3] [--sizes 500000,5000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from textual import events  # noqa: E402

from render import app_against, long_answer, start_server, stop_server  # noqa: E402
from taskdiv_chat.tui.widgets.answer_body import shown  # noqa: E402

CHUNK = 64  # characters per server event
RUNNING_FOR = float(os.environ.get("ESC_AFTER", "0.05"))  # seconds the answer streams before Esc


def huge_pieces(chars: int) -> list[str]:
    base = long_answer(5000)
    text = (base * (chars // len(base) + 1))[:chars]
    return [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)]


async def esc_once(pieces: list[str]) -> dict:
    process, parent, base_url = start_server(pieces, 0.0)
    app, hook, done_at = app_against(base_url)
    try:
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            await pilot.pause(0.5)
            screen = app.screen
            screen.prompt.area.load_text("Tell me everything")
            screen.prompt.area.focus()
            await pilot.pause()
            app.post_message(events.Key("enter", None))
            started = time.monotonic()
            while not (screen.answering and (answer := screen.last_answer()) is not None and answer.streaming):
                await asyncio.sleep(0.005)
                if time.monotonic() - started > 30:
                    raise SystemExit("the answer never started")
            await asyncio.sleep(RUNNING_FOR)
            if not answer.streaming:
                raise SystemExit("the answer ended before Esc: lower ESC_AFTER")
            pressed = time.monotonic()
            app.post_message(events.Key("escape", None))  # pilot.press would wait for the app to be idle
            while not done_at and time.monotonic() - pressed < 60:
                await asyncio.sleep(0.001)
            if not done_at:
                raise SystemExit("Esc did not stop the answer within 60 s")
            latency = done_at[0] - pressed
            answer = screen.last_answer()
            while getattr(answer.body, "finishing", False):  # the partial text laid out after the stop
                await asyncio.sleep(0.001)
            rendered = time.monotonic() - pressed
            await pilot.pause()
            view = answer.current
            stored = app.store.load_conversation(screen.conversation_id).turns[0].variants[0]
            shown_text = "".join(segment.source for segment in answer.body.segments)
            result = {"latency": latency, "rendered": rendered, "reason": view.finish_reason, "kept": len(view.text),
                      "stored": len(stored.text), "status": stored.status,
                      "shown_ok": shown_text == shown(view.text)}
    finally:
        stop_server(process, parent)
    total = sum(map(len, pieces))
    # kept: what the answer shows is what the store holds, cut off (or all of it, if it had all arrived)
    ok = (result["stored"] == result["kept"] > 0 and result["shown_ok"]
          and ((result["reason"] == "cancelled" and result["status"] == "cut-off" and result["kept"] <= total)
               or (result["status"] == "done" and result["kept"] == total)))
    return {**result, "ok": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="500000,5000000")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(TASKDIV_CONFIG=f"{tmp}/config/config.toml", TASKDIV_DATA_DIR=f"{tmp}/data",
                          TASKDIV_CACHE_DIR=f"{tmp}/cache")
        for size in (int(s) for s in args.sizes.split(",")):
            pieces = huge_pieces(size)
            runs = [asyncio.run(esc_once(pieces)) for _ in range(args.runs)]
            latencies = [r["latency"] for r in runs]
            median = statistics.median(latencies)
            print(f"{size:>9,} chars: Esc to stopped median {median:.3f} s (target < 0.3: "
                  f"{'met' if median < 0.3 else 'NOT met'}), runs {', '.join(f'{x:.3f}' for x in latencies)}; "
                  f"partial text laid out by {statistics.median(r['rendered'] for r in runs):.3f} s (median)")
            for r in runs:
                print(f"{'':>17}kept {r['kept']:,} chars, stored {r['stored']:,} ({r['status']}), shown in full: "
                      f"{r['shown_ok']} -> {'ok' if r['ok'] else 'NOT ok'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
