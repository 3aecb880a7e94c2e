"""Long lists in an answer: a list drawn whole as one widget (ListLines), against the same list laid out
item by item (one widget per item, as before; ListLines turned off in this process) and Textual's stock
Markdown, in the same run.

For a list of --items items (each wraps onto two lines at 100 columns), medians over --runs runs of
  - shown: seconds from mounting the Markdown to the first painted frame, headless at 100x30;
  - end: seconds to scroll to its end and paint again;
  - streamed: CPU seconds to stream the list into an answer's body, 800 characters per write, each
    write painted before the next (at 100 tokens/s a write comes every 80 ms or more); not for stock
    Markdown (an answer's body streams into FastMarkdown).

    .venv/bin/python benchmarks/lists.py [--items 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import VerticalScroll  # noqa: E402
from textual.widgets import Markdown  # noqa: E402
from textual.widgets.markdown import MarkdownBlock  # noqa: E402

from taskdiv_chat.tui.compat import markdown_fast  # noqa: E402
from taskdiv_chat.tui.widgets.answer_body import AnswerBody  # noqa: E402

WRITE_CHARS = 800


def long_list(items: int) -> str:
    return "".join(f"- item {i} with *some* text, long enough to wrap onto a second line at this width: "
                   f"a hundred columns and a little more than that\n" for i in range(items))


class Shown(App):
    def __init__(self, widget_class: type[Markdown], text: str) -> None:
        super().__init__()
        self.widget_class, self.text = widget_class, text

    def compose(self) -> ComposeResult:
        yield self.widget_class(self.text)


class Streamed(App):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield AnswerBody()


async def shown(widget_class: type[Markdown], text: str) -> tuple[float, float]:
    gc.collect()  # not what the runs before left (a stock Markdown run leaves thousands of widgets behind)
    app = Shown(widget_class, text)
    started = time.monotonic()
    async with app.run_test(size=(100, 30)) as pilot:
        markdown = app.query_one(widget_class)
        while not markdown.query(MarkdownBlock):  # (Markdown parses and mounts its blocks after its own mount)
            await pilot.pause()
        await pilot.pause()  # laid out and painted
        first = time.monotonic() - started
        started = time.monotonic()
        app.screen.scroll_end(animate=False)
        await pilot.pause()
        return first, time.monotonic() - started


async def streamed(text: str) -> float:
    gc.collect()
    app = Streamed()
    async with app.run_test(size=(100, 30)) as pilot:
        body = app.query_one(AnswerBody)
        await body.begin()
        cpu = time.process_time()
        for start in range(0, len(text), WRITE_CHARS):
            await body.write(text[start:start + WRITE_CHARS])
            await pilot.pause()
        cpu = time.process_time() - cpu
        await body.stop()
        return cpu


async def measure(items: int, runs: int) -> None:
    text = long_list(items)
    drawn_whole = markdown_fast._list_lines
    ways = {"one widget": (markdown_fast.FastMarkdown, drawn_whole),
            "item by item": (markdown_fast.FastMarkdown, lambda block: None),
            "stock Markdown": (Markdown, drawn_whole)}
    figures: dict[str, list[tuple[float, float, float | None]]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, (widget_class, list_lines) in ways.items():  # alternated: the machine's load hits each alike
            markdown_fast._list_lines = list_lines
            first, end = await shown(widget_class, text)
            cpu = await streamed(text) if widget_class is not Markdown else None
            figures[name].append((first, end, cpu))
    markdown_fast._list_lines = drawn_whole
    baseline = statistics.median(run[0] for run in figures["one widget"])
    for name, runs_of in figures.items():
        first, end = (statistics.median(run[i] for run in runs_of) for i in (0, 1))
        cpu = statistics.median(run[2] for run in runs_of) if runs_of[0][2] is not None else None
        streamed_text = f", streamed in {len(text) // WRITE_CHARS + 1} writes: {cpu:.2f} s CPU" if cpu else ""
        print(f"{name:>15}: shown {first:.3f} s (x{first / baseline:.2f}), end {end:.3f} s{streamed_text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"a list of {args.items} items, {len(long_list(args.items)):,} characters; medians of {args.runs} runs")
    asyncio.run(measure(args.items, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
