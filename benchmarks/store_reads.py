"""Store reads per Enter: how often one sent message makes the UI read the whole conversation again.

Runs the real app (headless) against the loopback server (tests/support/fake_server.py),
with the classifier asking that server (one letter), so nothing slow loads meanwhile.
For each Enter in a growing conversation it counts Store.conversation_reads (one read =
every message of the conversation loaded from SQLite, crash recovery no longer included)
from the key press until the answer has ended and the turn's category chip is painted.
Prints the median per Enter next to the baseline: the reads an Enter needs, 0 (the UI
already holds the conversation it shows; what it writes it knows).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/store_reads.py [--enters 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taskdiv_chat.config import BackendConfig, Settings  # noqa: E402
from tests.support.fake_server import FakeOpenAIServer  # noqa: E402
from tests.support.pilot import SIZE, Script, make_app, send, started, wait_for  # noqa: E402


async def reads_per_enter(enters: int, data: Path) -> list[int]:
    from taskdiv_chat.store import Store

    server = FakeOpenAIServer(Script(["A short answer about the sea."], letter="G")).start()
    settings = Settings(default_backend="fake", backends={
        "fake": BackendConfig(base_url=server.base_url, model="test-model", read_timeout=30)})
    settings.classify.method = "llm"
    counts: list[int] = []
    store = Store(data / "bench.sqlite3")
    try:
        app = make_app(settings, store=store, new_chat=True)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            for i in range(enters):
                before = store.conversation_reads
                await send(pilot, f"Write a line about the sea, take {i}")
                turn_id = pilot.app.screen.last_answer().turn_id
                user = pilot.app.screen.user_for(turn_id)
                await wait_for(pilot, lambda: user.chip.letter == "G", what="category chip")
                await pilot.pause(0.3)  # anything the UI still does for this Enter
                counts.append(store.conversation_reads - before)
    finally:
        store.close()
        server.stop()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enters", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for var, sub in (("TASKDIV_CONFIG", "config/config.toml"), ("TASKDIV_DATA_DIR", "data"),
                         ("TASKDIV_CACHE_DIR", "cache")):
            os.environ[var] = str(Path(tmp) / sub)  # the app's state files stay out of the user's dirs
        counts = asyncio.run(reads_per_enter(args.enters, Path(tmp)))
    print(f"full conversation reads per Enter ({args.enters} Enters, a conversation growing from 0 turns):")
    print(f"  median {statistics.median(counts):g}, min {min(counts)}, max {max(counts)}   baseline 0 (needed)"
          f"   each: {' '.join(map(str, counts))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
