"""The text of an answer: Markdown streamed in at a flat cost per write, checked once at the end."""

from __future__ import annotations

import asyncio
import contextlib
import re

from markdown_it import MarkdownIt
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownBlock
from textual.worker import WorkerCancelled

from ...sanitize import for_display
from ..compat import appends_done, markdown_widget
from ..compat.layout import HeightFromWidth

_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:", re.M)
SEGMENT_CHARS = 2000  # a streamed answer continues in a new Markdown widget past this size
_SPLIT = re.compile(r"\n[ \t]*\n(?=[A-Za-z\"'(])")  # a blank line, then a plain paragraph at column 0
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)
# An answer longer than this shows its start and a note: laying out megabytes of Markdown took the UI to
# gigabytes and blocked it for seconds. The whole text is stored, copied (alt+c) and exported (ctrl+s).
SHOW_CHARS = 100_000
# The final full parse of an answer up to this size runs on the UI thread: about 30 ms of CPU at this
# size, while in a thread that shares the GIL with rendering it came back only after 0.15-0.2 s.
PARSE_INLINE_CHARS = 20_000


def shown(text: str) -> str:
    """What the body shows of an answer: its first SHOW_CHARS characters, made safe for the terminal."""
    if len(text) <= SHOW_CHARS:
        return for_display(text)
    return (for_display(text[:SHOW_CHARS]) + f"\n\n*… {len(text) - SHOW_CHARS:,} more characters not shown here: "
            "alt+c copies the whole answer, ctrl+s exports it.*\n")


def _top_blocks(text: str) -> list[tuple[str, tuple[int, int]]]:
    """(token type, line range) of the top-level blocks of a full parse."""
    tokens = MarkdownIt("gfm-like").parse(text)
    return [(t.type, tuple(t.map)) for t in tokens if t.level == 0 and t.map is not None and t.nesting >= 0]


class AnswerBody(HeightFromWidth, Vertical):
    """The text of an answer: Markdown, streamed in at a flat cost per write.

    Streaming appends go through Markdown.get_stream(). Textual lays out a whole
    Markdown widget again whenever its last block grows, so a long answer is
    streamed into consecutive Markdown segments (split at a blank line before a
    plain paragraph, never inside a code fence): only the last, small segment is
    laid out again per write. When the answer ends, the whole text is parsed once
    more and compared with what was streamed; if any block differs (a half-open
    fence, a reference link defined later) the body is rebuilt with one full update.

    Every text is shown through `shown`: sanitize.for_display (an answer is a server's bytes), and at
    most SHOW_CHARS of it.
    """

    DEFAULT_CSS = """
    AnswerBody { height: auto; }
    AnswerBody Markdown { margin: 0; padding: 0 1; }
    """

    def __init__(self, text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = text
        self._stream = None
        self._segment_text = ""  # what the current segment holds
        self._offsets: list[int] = []  # line offset of each segment in the whole text
        self.written = False  # whether any text was streamed since begin()
        self._received = 0  # characters streamed since begin(), shown or not
        self._finishing = None  # the worker of finish_later, while it runs
        self._mounting = False  # whether _show is replacing the segments (not to be cancelled then)

    def compose(self) -> ComposeResult:
        yield markdown_widget()(shown(self._initial), open_links=False)

    @property
    def segments(self) -> list[Markdown]:
        return list(self.query_children(Markdown))

    @property
    def finishing(self) -> bool:
        """Whether finish_later is still laying the text out."""
        return self._finishing is not None and not self._finishing.is_finished

    def finish_later(self, text: str) -> None:
        """finish(text) in a worker of this widget: the caller goes on at once (Esc on a huge burst)."""
        self._finishing = self.run_worker(self.finish(text), group="finish", exclusive=True)

    async def finished(self) -> None:
        """Wait until finish_later has laid the text out; cancelling the waiter leaves the layout running."""
        if self._finishing is not None:
            # shielded: a cancelled await of a task cancels that task too
            with contextlib.suppress(WorkerCancelled):  # (a newer text replaced it)
                await asyncio.shield(self._finishing.wait())

    async def _cancel_finishing(self) -> None:
        worker, self._finishing = self._finishing, None
        if worker is not None and not worker.is_finished:
            # A mount cancelled half-way takes the next widget mounted here with it (the body stayed
            # empty and begin() failed): once finish() mounts, let it complete.
            if not self._mounting:
                worker.cancel()
            with contextlib.suppress(Exception):
                await worker.wait()

    async def reset(self, text: str) -> None:
        """Show `text` in one Markdown widget (no stream)."""
        await self._cancel_finishing()  # a newer text replaces one still being laid out
        await self._show(text)

    async def _show(self, text: str) -> None:
        await self.stop()
        self._mounting = True
        try:
            await self.remove_children()
            await self.mount(markdown_widget()(shown(text), open_links=False))
        finally:
            self._mounting = False

    async def begin(self) -> None:
        await self.reset("")
        self._segment_text = ""
        self._offsets = [0]
        self.written = False
        self._received = 0
        self._stream = Markdown.get_stream(self.segments[-1])

    async def write(self, text: str) -> None:
        """Append streamed text (callers batch it: one write per ~80 ms, not per token)."""
        if self._stream is None:
            return
        room = SHOW_CHARS - self._received
        self._received += len(text)
        if room <= 0:
            return
        text = for_display(text[:room])  # a sequence split across two writes loses its head here, its tail shows
        self.written = True
        if len(self._segment_text) + len(text) > SEGMENT_CHARS:
            combined = self._segment_text + text
            written = len(self._segment_text)
            for match in _SPLIT.finditer(combined, max(0, written - 4)):
                head = combined[:match.end()]
                if match.end() >= written and len(_FENCE_LINE.findall(head)) % 2 == 0:  # not inside a fence
                    await self._stream.write(text[: match.end() - written])
                    await self._stream.stop()
                    self._offsets.append(self._offsets[-1] + head.count("\n"))
                    segment = markdown_widget()("", open_links=False)
                    await self.mount(segment)
                    self._stream = Markdown.get_stream(segment)
                    self._segment_text = ""
                    text = combined[match.end():]
                    break
        self._segment_text += text
        await self._stream.write(text)

    async def stop(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            # MarkdownStream.stop() on a task that has not run yet (begin() and finish() with no await
            # between: the whole answer was already there) raises CancelledError: let it start first.
            await asyncio.sleep(0)
            await stream.stop()
            # MarkdownStream.stop() cancels its task, but an append already under way is
            # shielded and goes on mounting blocks: wait for it, so that a finished answer
            # really has every block mounted (Markdown.append holds the widget's lock).
            for segment in self.segments:
                await appends_done(segment)

    async def finish(self, text: str) -> bool:
        """End the stream and make the rendering exactly that of `text` parsed whole; True if rebuilt.

        If nothing was streamed (the answer came in one burst), `text` is parsed once into the
        empty segment: that is the full parse itself, so there is nothing to compare.
        """
        whole, text = text, shown(text)
        if self._stream is not None and not self.written:
            await self.stop()
            await self.segments[-1].append(text)  # awaited until every block is mounted
            return False
        await self.stop()
        segments = self.segments
        if len(segments) == len(self._offsets) and "".join(m.source for m in segments) == text \
                and not _REFERENCE_DEF.search(text):
            expected = (_top_blocks(text) if len(text) <= PARSE_INLINE_CHARS
                        else await asyncio.to_thread(_top_blocks, text))
            actual = [(b.name, (b.source_range[0] + offset, b.source_range[1] + offset))
                      for m, offset in zip(segments, self._offsets)
                      for b in m.children if isinstance(b, MarkdownBlock)]
            if expected == actual:
                return False
        await self._show(whole)
        return True
