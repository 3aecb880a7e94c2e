"""Enter to request: seconds from the Enter key to the chat request reaching the server, and store reads per Enter.

Runs the real app headless (100x30) and, in the same run, a minimal Textual app
that does nothing but POST the input's text when Enter is pressed (the least a
chat client must do). Both talk to the loopback server (tests/support/fake_server.py)
in its own process, which stamps each chat request's arrival with the
system-wide monotonic clock. For each app it sends two messages in a fresh
conversation (the first and the second message differ: the first creates the
conversation) and prints the medians over --runs runs; target: <= 50 ms.

Store reads: every SELECT statement the app's store runs from Enter until the
answer is done (SQLite's trace callback), and how many of them read a whole
conversation (the messages of a conversation), per message.

The turn is classified by the server (one letter), so no local model loads meanwhile.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/enter.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events, work  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Input  # noqa: E402

TARGET = 0.05
ANSWER = "A short answer of a few words, streamed word by word."


def serve(conn) -> None:
    """The server in its own process; sends back the arrival time of every chat (not classify) request."""
    from tests.support.fake_server import FakeOpenAIServer, Reply

    arrivals: list[float] = []

    def respond(body: dict) -> Reply:
        if body["messages"][-1]["content"].startswith("Classify the user prompt"):
            return Reply("G")
        arrivals.append(time.monotonic())
        return Reply(ANSWER)

    server = FakeOpenAIServer(respond).start()
    conn.send(server.base_url)
    while conn.recv() == "arrivals":
        conn.send(list(arrivals))
    server.stop()


class MinimalChat(App):
    """The baseline: an Input whose Enter streams one request with a client made at start."""

    def compose(self) -> ComposeResult:
        yield Input()

    def on_mount(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=self.base_url)
        self.done = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.post(event.value)

    @work(exclusive=True)
    async def post(self, text: str) -> None:
        body = {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": text}]}
        async with self.client.stream("POST", "chat/completions", json=body) as response:
            async for _ in response.aiter_lines():
                pass
        self.done += 1

    async def on_unmount(self) -> None:
        await self.client.aclose()


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {condition}")
        await asyncio.sleep(0.005)


async def arrivals_after(conn, count: int) -> list[float]:
    while True:
        conn.send("arrivals")
        got = conn.recv()
        if len(got) >= count:
            return got
        await asyncio.sleep(0.005)


async def minimal_run(conn, base_url: str) -> list[float]:
    app = MinimalChat()
    app.base_url = base_url
    conn.send("arrivals")
    seen = len(conn.recv())
    delays = []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        field = app.query_one(Input)
        field.focus()
        for i in range(2):
            field.value = f"message {i + 1}"
            await pilot.pause()
            pressed = time.monotonic()
            app.post_message(events.Key("enter", None))
            seen += 1
            delays.append((await arrivals_after(conn, seen))[-1] - pressed)
            await wait_until(lambda: app.done == i + 1)
            await pilot.pause(0.2)
    return delays


async def app_run(conn, base_url: str) -> tuple[list[float], list[int], list[int]]:
    from taskdiv_chat.config import BackendConfig, Settings
    from taskdiv_chat.store import Store
    from taskdiv_chat.tui.app import TaskdivApp
    from taskdiv_chat.tui.chat import AnswerDone

    settings = Settings(default_backend="bench", backends={
        "bench": BackendConfig(base_url=base_url, model="test-model", read_timeout=30)})
    settings.classify.method = "llm"
    store = Store(Path(os.environ["TASKDIV_DATA_DIR"]) / f"enter-{time.monotonic_ns()}.db")
    selects: list[str] = []
    store._db.set_trace_callback(lambda sql: selects.append(sql) if sql.lstrip().upper().startswith("SELECT") else None)
    done: list[float] = []
    app = TaskdivApp(settings, store=store, new_chat=True, warm_up=False)
    conn.send("arrivals")
    seen = len(conn.recv())
    delays, reads, full_reads = [], [], []

    def hook(message) -> None:
        if isinstance(message, AnswerDone):
            done.append(time.monotonic())

    try:
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            await wait_until(lambda: app.store is not None and app.screen.query("PromptBar"))
            await pilot.pause(0.5)
            area = app.screen.prompt.area
            for i in range(2):
                area.load_text(f"message {i + 1}")
                area.focus()
                await pilot.pause(0.2)
                selects.clear()
                whole_before = store.conversation_reads
                finished = len(done)
                pressed = time.monotonic()
                app.post_message(events.Key("enter", None))
                seen += 1
                delays.append((await arrivals_after(conn, seen))[-1] - pressed)
                await wait_until(lambda: len(done) > finished)
                await pilot.pause(0.5)  # the classification, context count and other after-work
                reads.append(len(selects))
                full_reads.append(store.conversation_reads - whole_before)
    finally:
        store.close()
    return delays, reads, full_reads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(TASKDIV_CONFIG=f"{tmp}/config/config.toml", TASKDIV_DATA_DIR=f"{tmp}/data",
                          TASKDIV_CACHE_DIR=f"{tmp}/cache", TASKDIV_STATE_DIR=f"{tmp}/state")
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.get_context("fork").Process(target=serve, args=(child,), daemon=True)
        process.start()
        base_url = parent.recv()
        ours: list[list[float]] = [[], []]
        base: list[list[float]] = [[], []]
        reads: list[list[int]] = [[], []]
        full: list[list[int]] = [[], []]
        try:
            for _ in range(args.runs):  # alternating, so both see the same machine load
                for i, d in enumerate(asyncio.run(minimal_run(parent, base_url))):
                    base[i].append(d)
                delays, counts, fulls = asyncio.run(app_run(parent, base_url))
                for i in range(2):
                    ours[i].append(delays[i])
                    reads[i].append(counts[i])
                    full[i].append(fulls[i])
        finally:
            parent.send("stop")
            process.join(5)
    for i, name in enumerate(("first message", "second message")):
        mine, minimal = statistics.median(ours[i]), statistics.median(base[i])
        print(f"{name:>14}: Enter to request {mine * 1000:.0f} ms (minimal app {minimal * 1000:.0f} ms, "
              f"ratio {mine / minimal:.1f}x; target <= {TARGET * 1000:.0f} ms: {'met' if mine <= TARGET else 'NOT met'})"
              f" · store reads {statistics.median(reads[i]):g} SELECTs, "
              f"{statistics.median(full[i]):g} whole-conversation reads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
