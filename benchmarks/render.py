"""Streaming render cost: a 5,000-token Markdown answer from the loopback server.

Runs the real app (headless, 100x30, each app in a process of its own) against tests.support.fake_server twice:
at a realistic 100 tokens/s and as one burst as fast as the server sends; and,
in the same run, at the realistic rate, a minimal Textual app that streams the same chunks from the same
kind of server into one Markdown widget through Markdown.get_stream (MarkdownStream),
with a TextArea to type in, measured the same way. For each it prints
  - shown: seconds from the server writing its last chunk to the first frame that shows the whole
    answer (every block of the text mounted, then laid out and painted: the same test in both apps)
    -- target <= 0.5 s;
  - done: seconds from the last chunk to the answer being done (ours: the app's AnswerDone message
    handled, after the final full parse; the minimal app: its last block mounted);
  - key latency while streaming: a key is typed into the input every 100 ms and
    the time until the input shows it is recorded (median and max);
  - CPU seconds used by the process over the stream, and its peak resident memory.
The turn is classified by the server (one letter), so no local model loads meanwhile.

Target (issue): at 100 tokens/s the end of the answer shows no later after the last chunk than in
the minimal app (compared on "shown": when the whole answer is painted), and key echo p90 <= 100 ms.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/render.py [--rate 100] [--skip-realistic] [--skip-minimal]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import VerticalScroll  # noqa: E402
from textual.widgets import Markdown, TextArea  # noqa: E402

from taskdiv_chat import tokens  # noqa: E402
from taskdiv_chat.config import BackendConfig, Settings  # noqa: E402
from tests.support.fake_server import FakeOpenAIServer, Reply  # noqa: E402


def long_answer(target_tokens: int = 5000) -> str:
    """Paragraphs, lists (nested and numbered) and one long code block, about `target_tokens` long."""
    para = ("The lighthouse keeper counted the ships every evening, writing each name in a ledger "
            "that had outlived three keepers before her. **Storms** came from the west; `fog` from the sea. ")
    code = "\n".join(f"def step_{i}(state):\n    # advance the simulation by one tick\n"
                     f"    state['tick'] += {i}\n    return {{k: v * 2 for k, v in state.items()}}\n"
                     for i in range(60))
    parts = ["# A long answer", ""]
    section = 0
    while True:
        section += 1
        parts += [f"## Part {section}", "", para * 3, "",
                  "- first point with *emphasis*", "- second point", "  - a nested point", "- third point", "",
                  "1. one", "2. two", "3. three", ""]
        if section == 3:
            parts += ["```python", code, "```", ""]
        text = "\n".join(parts)
        if tokens.count_text(text) >= target_tokens:
            return text


def token_pieces(text: str) -> list[str]:
    enc = tokens.encoding()
    return [enc.decode([t]) for t in enc.encode(text)]


class TimedServer(FakeOpenAIServer):
    """Records when the last chunk of a stream was written."""

    async def _stream(self, *args, **kwargs):
        result = await super()._stream(*args, **kwargs)
        self.last_chunk_at = time.monotonic()
        return result


def serve(pieces: list[str], delay: float, conn) -> None:
    """The server in its own process, as a real one would be (no GIL shared with the app).
    time.monotonic() is the system-wide CLOCK_MONOTONIC, so both processes' times compare."""
    def respond(body: dict) -> Reply:
        if body["messages"][-1]["content"].startswith("Classify the user prompt"):
            return Reply("G")  # the turn's classification: one letter, as a model answers it
        return Reply(chunks=pieces, chunk_delay=delay)

    server = TimedServer(respond).start()
    conn.send(server.base_url)
    conn.recv()  # "stop"
    conn.send(getattr(server, "last_chunk_at", None))
    server.stop()


def start_server(pieces: list[str], delay: float):
    """(process, pipe, base_url) of a loopback server in its own process streaming `pieces`."""
    parent, child = multiprocessing.Pipe()
    # spawn, not fork: a fork of this process (threads of tiktoken, asyncio's executor, the app's) could
    # inherit a lock held by one of them and stall the server mid-stream (runs hung now and then)
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(pieces, delay, child), daemon=True)
    process.start()
    return process, parent, parent.recv()


def stop_server(process, parent) -> float | None:
    """Stop the server; when it wrote its last chunk (None: the stream did not end)."""
    parent.send("stop")
    last_chunk_at = parent.recv()
    process.join(5)
    return last_chunk_at


def last_line(text: str) -> int:
    """The line after the last top-level block of `text`, as a Markdown block's source_range ends."""
    from markdown_it import MarkdownIt

    return max(t.map[1] for t in MarkdownIt("gfm-like").parse(text) if t.level == 0 and t.map)


def mounted_to(markdown: Markdown, offset: int = 0) -> int:
    """The line the mounted blocks of `markdown` reach (0 while an append is under way)."""
    from textual.widgets.markdown import MarkdownBlock

    if markdown.lock.is_locked:
        return 0
    blocks = [child for child in markdown.children if isinstance(child, MarkdownBlock)]
    return offset + blocks[-1].source_range[1] if blocks else 0


def paint_clock(app, whole_mounted) -> dict:
    """Records in ["since"] the time of the first painted frame from which on whole_mounted() held
    (Textual renders each frame before handing it to _display, which a headless app then drops)."""
    clock = {"since": None}
    display = app._display

    def timed_display(screen, renderable) -> None:
        display(screen, renderable)
        painted_at = time.monotonic()  # before the test, whose cost differs between the apps
        if renderable is None:
            return
        if whole_mounted():
            clock["since"] = clock["since"] or painted_at
        else:
            clock["since"] = None

    app._display = timed_display
    return clock


async def painted(pilot, clock: dict, timeout: float = 10.0) -> None:
    """Wait until a frame showing the whole answer has been painted."""
    started = time.monotonic()
    while clock["since"] is None and time.monotonic() - started < timeout:
        await pilot.pause(0.05)


async def type_keys(app, area, finished, every: float, limit: float = 300.0) -> list[float]:
    """Until finished(): type a key into `area` every `every` s; the seconds each took to show.
    TimeoutError after `limit` s (an answer that never ends must not hang the benchmark)."""
    latencies = []
    give_up = time.monotonic() + limit
    while not finished():
        if time.monotonic() > give_up:
            raise TimeoutError(f"the answer did not end within {limit:g} s")
        # type one key and wait until the input shows it
        before = len(area.text)
        started = time.monotonic()
        app.post_message(events.Key("x", "x"))  # pilot.press would wait for the app to be idle
        while len(area.text) == before and time.monotonic() - started < 10:
            await asyncio.sleep(0.001)
        if not finished():
            latencies.append(time.monotonic() - started)
        await asyncio.sleep(every)
    return latencies


def app_against(base_url: str):
    """The app on the loopback server, with a hook for run_test that records when AnswerDone arrives.
    Returns (app, hook, done_at)."""
    from taskdiv_chat.tui.app import TaskdivApp
    from taskdiv_chat.tui.chat import AnswerDone

    settings = Settings(default_backend="bench", backends={
        "bench": BackendConfig(base_url=base_url, model="test-model", read_timeout=120)})
    settings.classify.method = "llm"  # no local classifier loading in the background: this measures rendering
    done_at: list[float] = []

    def hook(message) -> None:
        if isinstance(message, AnswerDone):
            done_at.append(time.monotonic())

    return TaskdivApp(settings, warm_up=False, new_chat=True), hook, done_at


async def run_once(pieces: list[str], delay: float, type_every: float = 0.1) -> dict:
    from taskdiv_chat.tui.widgets.answer_body import AnswerBody

    process, parent, base_url = start_server(pieces, delay)
    app, hook, done_at = app_against(base_url)
    try:
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            await pilot.pause(0.5)
            screen = app.screen
            area = screen.prompt.area
            area.load_text("Tell me a long story")
            area.focus()
            await pilot.pause()
            end = last_line("".join(pieces))

            def whole_mounted() -> bool:
                answer = screen.last_answer()
                bodies = answer.query(AnswerBody) if answer is not None else []
                if not bodies:  # (an answer is painted once before its body is composed)
                    return False
                segments, offsets = bodies[0].segments, bodies[0]._offsets
                return 0 < len(segments) == len(offsets) and mounted_to(segments[-1], offsets[-1]) == end

            clock = paint_clock(app, whole_mounted)
            cpu0, wall0 = time.process_time(), time.monotonic()
            app.post_message(events.Key("enter", None))  # pilot.press would wait for the app to be idle
            await asyncio.sleep(0.05)
            try:
                latencies = await type_keys(app, area, lambda: bool(done_at), type_every)
            except TimeoutError as exc:
                answer = screen.last_answer()
                raise SystemExit(f"{exc}: answering {screen.answering}, streaming {answer and answer.streaming}, "
                                 f"laying out {answer and answer.body.finishing}") from None
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            await painted(pilot, clock)
            answer = screen.last_answer()
            rendered_ok = answer is not None and answer.current.text == "".join(pieces)
    finally:
        last_chunk_at = stop_server(process, parent)
    if last_chunk_at is None or not rendered_ok or clock["since"] is None:
        raise SystemExit(f"the stream did not finish, or no frame showed it whole: {answer.current}")
    return {"last_chunk_at": last_chunk_at, "done_at": done_at[0], "lag": done_at[0] - last_chunk_at,
            "shown": clock["since"] - last_chunk_at, "wall": wall,
            "cpu": cpu, "keys": latencies, "complete": rendered_ok}


class MinimalStreamApp(App):
    """The baseline: one streaming request read with httpx, every chunk written to Markdown.get_stream
    (Textual's MarkdownStream) as it arrives; a TextArea to type in."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.text = ""
        self.done_at: float | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown()
        yield TextArea()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).anchor()

    async def answer(self, prompt: str) -> None:
        import httpx

        markdown = self.query_one(Markdown)
        stream = Markdown.get_stream(markdown)
        body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        async with httpx.AsyncClient(timeout=120) as client:
            async with client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    for choice in json.loads(line[6:]).get("choices", []):
                        if content := (choice.get("delta") or {}).get("content"):
                            self.text += content
                            await stream.write(content)
        await stream.stop()
        async with markdown.lock:  # every block mounted (Markdown.append holds the lock)
            pass
        self.done_at = time.monotonic()


async def run_minimal(pieces: list[str], delay: float, type_every: float = 0.1) -> dict:
    process, parent, base_url = start_server(pieces, delay)
    app = MinimalStreamApp(base_url)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.5)
            area = app.query_one(TextArea)
            area.focus()
            await pilot.pause()
            markdown, end = app.query_one(Markdown), last_line("".join(pieces))
            clock = paint_clock(app, lambda: mounted_to(markdown) == end)
            cpu0, wall0 = time.process_time(), time.monotonic()
            app.run_worker(app.answer("Tell me a long story"))
            await asyncio.sleep(0.05)
            latencies = await type_keys(app, area, lambda: app.done_at is not None, type_every)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            await painted(pilot, clock)
            rendered_ok = app.text == "".join(pieces)
    finally:
        last_chunk_at = stop_server(process, parent)
    if last_chunk_at is None or not rendered_ok or clock["since"] is None:
        raise SystemExit("the minimal app's stream did not finish, or no frame showed it whole")
    return {"last_chunk_at": last_chunk_at, "done_at": app.done_at, "lag": app.done_at - last_chunk_at,
            "shown": clock["since"] - last_chunk_at,
            "wall": wall, "cpu": cpu, "keys": latencies, "complete": rendered_ok}


def measured(app: str, pieces: list[str], delay: float) -> dict:
    """run_once ("ours") or run_minimal in a process of its own: one app's garbage, collector state and
    caches must not change the other's figures (run one after the other in one process, they did)."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_measure, args=(app, pieces, delay, child))
    process.start()
    result = parent.recv() if parent.poll(600) else {"error": "no result after 600 s"}
    process.join(10)
    if "error" in result:
        raise SystemExit(f"{app}: {result['error']}")
    return result


def _measure(app: str, pieces: list[str], delay: float, conn) -> None:
    try:
        result = asyncio.run((run_once if app == "ours" else run_minimal)(pieces, delay))
        result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send(result)
    except BaseException as exc:  # SystemExit included: the parent is waiting for an answer
        conn.send({"error": str(exc) or repr(exc)})


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def report(name: str, r: dict) -> None:
    keys = r["keys"] or [float("nan")]
    print(f"{name:>24}: whole answer shown {r['shown']:.3f} s after the last chunk (target <= 0.5: "
          f"{'met' if r['shown'] <= 0.5 else 'NOT met'}), done after {r['lag']:.3f} s · stream {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU · "
          f"key latency median {statistics.median(keys) * 1000:.0f} ms, p90 {p90(keys) * 1000:.0f} ms "
          f"(target <= 100: {'met' if p90(keys) <= 0.1 else 'NOT met'}), max {max(keys) * 1000:.0f} ms "
          f"({len(r['keys'])} keys) · peak RSS {r['peak_mib']:.0f} MiB · text complete: {r['complete']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="tokens per second of the realistic run")
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--skip-realistic", action="store_true", help="only the burst (the realistic run takes ~50 s)")
    parser.add_argument("--skip-minimal", action="store_true", help="no minimal MarkdownStream app beside it")
    parser.add_argument("--skip-burst", action="store_true")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(TASKDIV_CONFIG=f"{tmp}/config/config.toml", TASKDIV_DATA_DIR=f"{tmp}/data",
                          TASKDIV_CACHE_DIR=f"{tmp}/cache")
        text = long_answer(args.tokens)
        pieces = token_pieces(text)
        print(f"answer: {len(pieces)} tokens (one chunk each), {len(text):,} characters")
        runs = ([] if args.skip_burst else [("burst", 0.0)]) + \
            ([] if args.skip_realistic else [(f"{args.rate:g} tok/s", 1 / args.rate)])
        for name, delay in runs:
            r = measured("ours", pieces, delay)
            report(f"taskdiv-chat {name}", r)
            if not args.skip_minimal and delay:  # (a burst takes the minimal app minutes: one write per chunk)
                m = measured("minimal", pieces, delay)
                report(f"minimal app {name}", m)
                print(f"{'':>24}  {name}: the end of the answer shows {r['shown']:.3f} s after the last chunk, "
                      f"against {m['shown']:.3f} s for a minimal MarkdownStream app (ratio {r['shown'] / m['shown']:.2f}; "
                      f"target: no worse than the minimal app: {'met' if r['shown'] <= m['shown'] else 'NOT met'}); "
                      f"done after {r['lag']:.3f} against {m['lag']:.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
