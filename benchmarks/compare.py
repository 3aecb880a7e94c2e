"""Comparing models: time to first token of each backend, and the UI's key latency while three streams arrive.

Three loopback servers (tests.support.fake_server, in their own process, as real servers would be)
answer with different first-byte delays at --rate tokens/s each. It prints
  - time to first token of each backend, alone (one `send`) and within a comparison of all three
    (ConversationService.compare_turn), medians of --runs; the ratio shows whether going together
    delays anyone;
  - key latency in the chat UI (headless, 120x36): a key typed into the input every 100 ms and
    the time until the input shows it, while the three streams of a send-to-all arrive, against
    the same with nothing streaming (baseline, same run): median, p90 and max.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compare.py [--rate 50] [--tokens 300] [--runs 3]
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

from textual import events  # noqa: E402

from taskdiv_chat.config import BackendConfig, Settings  # noqa: E402
from tests.support.fake_server import FakeOpenAIServer, Reply  # noqa: E402

NAMES = ("alpha", "beta", "gamma")
FIRST_BYTE = (0.15, 0.4, 0.8)  # seconds before each server's response headers


def serve(tokens: int, delay: float, conn) -> None:
    def responder(first_byte: float, word: str):
        def respond(body: dict) -> Reply:
            last = body["messages"][-1]["content"]
            if last.startswith("Classify the user prompt"):
                return Reply("G")
            if last.startswith("Decide whether two responses"):
                return Reply("NO")
            return Reply(chunks=[f"{word} " for _ in range(tokens)], chunk_delay=delay, first_byte_delay=first_byte)
        return respond

    servers = [FakeOpenAIServer(responder(fb, name), models=(f"{name}-model",)).start()
               for fb, name in zip(FIRST_BYTE, NAMES)]
    conn.send([s.base_url for s in servers])
    conn.recv()
    for server in servers:
        server.stop()


def settings_for(urls: list[str]) -> Settings:
    settings = Settings(default_backend="alpha", backends={
        name: BackendConfig(base_url=url, model=f"{name}-model", read_timeout=120) for name, url in zip(NAMES, urls)})
    settings.classify.method = "llm"  # the server classifies: no local model loads meanwhile
    settings.judge.method = "llm"
    settings.compare.backends = list(NAMES)
    return settings


async def first_tokens(settings: Settings, together: bool) -> dict[str, float]:
    """Seconds from the request to each backend's first text: all three at once, or one at a time."""
    from taskdiv_chat.conversation import ConversationService, Delta, Failed, Started
    from taskdiv_chat.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "h.db") as store:
        result: dict[str, float] = {}
        runs = [list(NAMES)] if together else [[name] for name in NAMES]
        for names in runs:
            service = ConversationService(store, settings)
            started = time.monotonic()
            backend_of: dict[int, str] = {}
            try:
                async for event in service.compare_turn("Write a long story", names):
                    if isinstance(event, Started):
                        backend_of[event.index] = event.backend
                    elif isinstance(event, Delta) and backend_of[event.index] not in result:
                        result[backend_of[event.index]] = time.monotonic() - started
                    elif isinstance(event, Failed):
                        raise SystemExit(f"{names}: {event.error}")
            finally:
                await service.aclose()
        return result


async def key_latency(settings: Settings, streams: bool, type_every: float = 0.1, idle_keys: int = 40) -> dict:
    """Key latencies in the chat UI while a send-to-all streams (or, without streams, for idle_keys keys)."""
    from taskdiv_chat.tui.app import TaskdivApp
    from taskdiv_chat.tui.widgets.compare import CompareView

    app = TaskdivApp(settings, warm_up=False, new_chat=True)
    latencies: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)
        screen = app.screen
        area = screen.prompt.area
        area.focus()
        if streams:
            area.load_text("Write a long story")
            await pilot.pause()
            app.post_message(events.Key("f8", None))  # pilot.press would wait for the app to be idle
            while not screen.chat.query(CompareView):
                await asyncio.sleep(0.01)
        view = screen.chat.query(CompareView).first() if streams else None

        def running() -> bool:
            if not streams:
                return len(latencies) < idle_keys
            return not (len(view.panes) == 3 and all(p.variant_id is not None for p in view.panes))

        while running():
            before = len(area.text)
            started = time.monotonic()
            app.post_message(events.Key("x", "x"))
            while len(area.text) == before and time.monotonic() - started < 10:
                await asyncio.sleep(0.001)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(type_every)
        complete = not streams or all(len(p.text.split()) == len(view.panes[0].text.split()) for p in view.panes)
        await pilot.pause()
    return {"keys": latencies, "complete": complete}


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.1f} ms, p90 {p90(values) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms ({len(values)} keys)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second of each server")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per answer")
    parser.add_argument("--runs", type=int, default=3, help="time-to-first-token runs (medians)")
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=serve, args=(args.tokens, 1 / args.rate, child),
                                                          daemon=True)
    process.start()
    urls = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(TASKDIV_CONFIG=f"{tmp}/config/config.toml", TASKDIV_DATA_DIR=f"{tmp}/data",
                              TASKDIV_CACHE_DIR=f"{tmp}/cache")
            settings = settings_for(urls)
            print(f"3 loopback servers, first byte after {', '.join(f'{s:g}' for s in FIRST_BYTE)} s, "
                  f"{args.rate:g} tok/s, {args.tokens} tokens each")
            alone = [asyncio.run(first_tokens(settings, together=False)) for _ in range(args.runs)]
            together = [asyncio.run(first_tokens(settings, together=True)) for _ in range(args.runs)]
            print("time to first token (median of", args.runs, "runs):")
            for name, fb in zip(NAMES, FIRST_BYTE):
                a = statistics.median(r[name] for r in alone)
                t = statistics.median(r[name] for r in together)
                print(f"  {name:>5} (first byte {fb:g} s): alone {a * 1000:.0f} ms · in a 3-way comparison "
                      f"{t * 1000:.0f} ms · ratio {t / a:.2f}")
            idle = asyncio.run(key_latency(settings, streams=False))
            busy = asyncio.run(key_latency(settings, streams=True))
            print(f"key latency, nothing streaming (baseline): {ms(idle['keys'])}")
            print(f"key latency, 3 streams arriving:           {ms(busy['keys'])} · text complete: {busy['complete']}")
            ratio = statistics.median(busy["keys"]) / statistics.median(idle["keys"])
            target = "met" if p90(busy["keys"]) <= 0.1 else "NOT met"
            print(f"  median ratio to baseline {ratio:.2f}; p90 target <= 100 ms: {target}")
    finally:
        parent.send("stop")
        process.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
