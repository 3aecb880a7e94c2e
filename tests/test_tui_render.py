"""Rendering of answers: FastMarkdown draws what Markdown draws, and a burst is rendered whole."""

from __future__ import annotations

import asyncio
import gc

from textual import events
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Offset
from textual.layouts.vertical import VerticalLayout
from textual.selection import Selection
from textual.visual import Visual
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence, MarkdownH2, MarkdownParagraph

from taskdiv_chat.tui import chat, collector
from taskdiv_chat.tui.chat import AnswerDone
from taskdiv_chat.tui.widgets.answer_body import SEGMENT_CHARS, AnswerBody, _top_blocks
from taskdiv_chat.tui.compat.layout import HeightFromWidth
from taskdiv_chat.tui.compat.markdown_fast import (FastBulletList, FastList, FastMarkdown, FastOrderedList,
                                                  HighlightOnceFence, MarkdownSimpleListItem)
from tests.support.fake_server import Reply
from tests.support.pilot import SIZE, Script, make_app, started, wait_for

DOCUMENT = """\
# Lists

- a first point with *emphasis*, **strength**, `code` and a [link](https://example.com) that runs on \
long enough to wrap onto a second and even a third line at this width, hanging under its text
- second point
  - a nested point that is also long enough to wrap onto the next line at forty or so columns
    - deeper still
- an item with two paragraphs

  the second paragraph of that item

8. eight
9. nine
10. ten, where the numbers grow a column wider and this item wraps onto a second line too

```python
def f(x):
    return x * 2
```
"""


class Host(App):
    def __init__(self, widget_class: type[Markdown], text: str) -> None:
        super().__init__()
        self.widget_class, self.text = widget_class, text

    def compose(self) -> ComposeResult:
        yield self.widget_class(self.text)


async def screen_cells(widget_class: type[Markdown], text: str, size=(48, 40), theme: str | None = None):
    """Every cell of the screen as (character, style)."""
    app = Host(widget_class, text)
    async with app.run_test(size=size) as pilot:
        if theme:
            app.theme = theme
        await pilot.pause()
        return cells(app), app


def cells(app) -> list[list[tuple]]:
    strips = app.screen._compositor.render_strips()
    return [[(ch, seg.style) for seg in strip for ch in seg.text] for strip in strips]


def drawn(style):
    """What a cell's style draws, and does when clicked: all of it but the selection offset, which
    indexes the text of the widget the cell is in (a list drawn as one widget counts its lines)."""
    if style is None:
        return None
    return style.clear_meta_and_links(), style.link, {k: v for k, v in style.meta.items() if k != "offset"}


# Blocks of one kind (in one list, or in lists side by side), with inline styles: they share the first one's
# (SharedInlineStyles)
SIBLINGS = """\
## One *em* **strong** `code`

## Two *em* **strong** ~~struck~~

A paragraph with *em*, **strong**, ~~struck~~ and `code`.

Another paragraph with *em*, **strong** and `code`.

- an item with *em* and `code`
- an item with **strong**
- an item with ~~struck~~

A paragraph between two lists.

- an item of another list, with *em*
- and with `code`
"""


async def test_fast_markdown_draws_exactly_what_markdown_draws():
    for text in (DOCUMENT, SIBLINGS):
        for theme in (None, "textual-light"):  # a theme set after mount styles every block again
            expected, _ = await screen_cells(Markdown, text, theme=theme)
            actual, app = await screen_cells(FastMarkdown, text, theme=theme)
            assert ["".join(ch for ch, _ in row) for row in actual] == \
                ["".join(ch for ch, _ in row) for row in expected]
            assert [[(ch, drawn(style)) for ch, style in row] for row in actual] == \
                [[(ch, drawn(style)) for ch, style in row] for row in expected]


async def test_a_press_on_any_character_selects_from_that_character():
    # where a mouse press starts a selection: the offset drawn into each cell, in the text its widget copies
    for widget_class in (Markdown, FastMarkdown):  # (Textual's own passes too)
        for text in (DOCUMENT, SIBLINGS):
            app = Host(widget_class, text)
            async with app.run_test(size=(48, 40)) as pilot:
                await pilot.pause()
                checked = markers = 0
                for y, row in enumerate(cells(app)):
                    row_text = "".join(ch for ch, _ in row)
                    for x, ch in enumerate(row_text):
                        widget, offset = app.screen.get_widget_and_offset_at(x, y)
                        if not ch.strip() or offset is None:
                            continue
                        lines = widget.get_selection(Selection(None, None))[0].splitlines()
                        if lines[offset.y][offset.x:offset.x + 1] == ch:
                            checked += 1
                        else:  # a list's marker, which is not copied: a press on it selects from its item's start
                            assert widget_class is FastMarkdown and ch in "•▪‣0123456789."
                            assert offset.x == 0 and lines[offset.y].split()[0] in row_text[x:].split()[:2]
                            markers += 1
                assert checked > 200 and (markers > 0) == (widget_class is FastMarkdown)


async def test_a_selection_across_items_of_a_list_drawn_whole_copies_and_shows_their_text():
    app = Host(FastMarkdown, SIBLINGS)
    async with app.run_test(size=(48, 40)) as pilot:
        await pilot.pause()
        before = cells(app)
        rows = ["".join(ch for ch, _ in row) for row in before]
        y = rows.index("  • an item with strong".ljust(48))
        assert isinstance(app.screen.get_widget_at(4, y)[0], FastBulletList)
        # from "with" in the second item to the end of "item" in the third, as a mouse drags it
        await pilot.mouse_down(offset=(12, y))
        await pilot.hover(offset=(10, y + 1))
        await pilot.mouse_up(offset=(10, y + 1))
        await pilot.pause()
        assert app.screen.get_selected_text() == "with strong\nan item"
        highlighted = ["".join(ch for (ch, style), (_, was) in zip(row, old) if drawn(style) != drawn(was))
                       for row, old in zip(cells(app), before)]
        assert [line for line in highlighted if line] == ["with strong", "an item"]


# Nested and wrapped: lines under a marker, beside a nested marker, and no room at all in a narrow column
NESTED = """\
- one two three four five six seven eight
- a
  - bee, long enough to wrap onto a second line at this width
    1. deep
  - cee
"""


async def test_a_press_left_of_a_line_of_a_list_selects_from_the_start_of_that_line():
    # under a marker and beside a nested one: the cells left of a line's text start a selection where it does
    app = Host(FastMarkdown, NESTED)
    async with app.run_test(size=(30, 20)) as pilot:
        await pilot.pause()
        region = app.query_one(FastBulletList).content_region
        rows = ["".join(ch for ch, _ in row) for row in cells(app)]
        checked = 0
        for y in range(region.y, region.bottom):
            first = next(x for x in range(region.x, region.right) if rows[y][x].strip())
            _, expected = app.screen.get_widget_and_offset_at(first, y)
            for x in range(region.x, first):
                assert app.screen.get_widget_and_offset_at(x, y) == (app.query_one(FastBulletList), expected)
                checked += 1
        assert region.height >= 8 and checked >= 2 * region.height


async def test_a_list_drawn_whole_is_as_tall_as_what_it_draws_at_any_width():
    app = Host(FastMarkdown, NESTED + "\n98. a\n99. b\n100. c, that wraps\n     - x\n       1. deep\n")
    async with app.run_test(size=(48, 40)) as pilot:
        await pilot.pause()
        for each in (app.query_one(FastBulletList), app.query_one(FastOrderedList)):
            # (a deep item with no room beside its marker: wrapping its text into 0 columns raised, and the app
            # crashed; into fewer, its lines were counted but not drawn)
            for width in range(1, 40):
                drawn_lines = Visual.to_strips(each, each.lines, width, None, each.visual_style)
                assert len(drawn_lines) == each.lines.get_height(each.styles, width)


async def test_a_selection_in_a_list_counts_the_lines_it_draws():
    # inline code keeps a U+2028 (a line end to str.splitlines, not to the drawn text)
    app = Host(FastMarkdown, "- `a\u2028b` x\n- cee\n- dee\n")
    async with app.run_test(size=(48, 10)) as pilot:
        await pilot.pause()
        assert app.query_one(FastBulletList).get_selection(Selection(Offset(1, 1), Offset(2, 2))) == ("ee\nde", "\n")


async def test_blocks_of_one_kind_share_their_inline_styles():
    app = Host(FastMarkdown, SIBLINGS)
    async with app.run_test(size=(48, 40)) as pilot:
        await pilot.pause()
        for kind in (MarkdownH2, MarkdownParagraph, FastBulletList):
            first, *others = app.query(kind)
            assert others and all(other._component_styles == first._component_styles for other in others)
        # (Markdown mounts its first block on its own, so the headers here are styled in two passes)
        for kind in (MarkdownParagraph, FastBulletList):
            first, *others = app.query(kind)
            assert all(other._component_styles["em"] is first._component_styles["em"] for other in others)


async def test_a_list_is_one_widget_when_each_item_is_a_paragraph_maybe_followed_by_such_a_list():
    app = Host(FastMarkdown, DOCUMENT)
    async with app.run_test(size=(48, 40)) as pilot:
        await pilot.pause()
        # (the list under the nested point is drawn inside the list it is in: not a widget of its own)
        outer, nested = app.query(FastBulletList)
        # an item with two paragraphs: that list is laid out item by item, an item of one paragraph in one
        # widget, the others in Textual's bullet/column layout
        assert outer.lines is None
        items = [item._content.plain.split(",")[0] for item in outer.query(MarkdownSimpleListItem)]
        assert items == ["a first point with emphasis"]
        paragraphs = [p._content.plain for p in outer.query(MarkdownParagraph)]
        assert "second point" in paragraphs and "an item with two paragraphs" in paragraphs
        # the list under "second point" (with the list under its item) and the numbered list: one widget each
        assert nested.lines is not None and not nested.children
        assert nested.lines.text.splitlines() == [
            "a nested point that is also long enough to wrap onto the next line at forty or so columns", "deeper still"]
        ordered = app.query_one(FastOrderedList)
        assert ordered.lines is not None and not ordered.children
        assert [line.split(",")[0] for line in ordered.lines.text.splitlines()] == ["eight", "nine", "ten"]


async def test_code_is_highlighted_once_and_again_when_its_colours_change(monkeypatch):
    calls: list[bool] = []
    original = HighlightOnceFence.highlight.__func__

    def counted(cls, code, language, ansi=False, dark=False):
        calls.append(dark)
        return original(cls, code, language, ansi=ansi, dark=dark)

    monkeypatch.setattr(HighlightOnceFence, "highlight", classmethod(counted))
    app = Host(FastMarkdown, DOCUMENT)
    async with app.run_test(size=(48, 40)) as pilot:
        await pilot.pause()
        assert calls == [True]  # built, mounted, styled: highlighted once
        app.theme = "textual-light"
        await pilot.pause()
        assert calls == [True, False]
        fence = app.query_one(HighlightOnceFence)
        assert fence._highlighted_code == MarkdownFence.highlight(fence.code, fence.lexer, dark=False)


def long_answer(sections: int = 20) -> str:
    para = "The keeper counted the ships every evening and wrote each name in a ledger. " * 3
    parts = []
    for n in range(1, sections + 1):
        parts += [f"## Part {n}", "", para, "", "- first point", "- second point", "  - nested point", "",
                  "1. one", "2. two", ""]
    return "\n".join(parts)


async def test_a_burst_is_rendered_whole_when_the_answer_is_done(fake_server, fake_backend_settings, monkeypatch):
    # a loopback burst on a loaded test machine may arrive slower than a real one: what is tested here
    # is how a held-back answer is rendered, not how fast this machine receives it
    monkeypatch.setattr(chat, "BURST_RATE", 1000)
    monkeypatch.setattr(chat, "BURST_HOLD", 30.0)
    text = long_answer()
    assert len(text) > 2 * SEGMENT_CHARS  # streamed, it would have been split into segments
    fake_server.responder = Script([Reply(text)])  # sent as fast as the server can
    done: list[AnswerDone] = []
    app = make_app(fake_backend_settings)

    def hook(message) -> None:
        if isinstance(message, AnswerDone):
            done.append(message)
            # at the moment the answer is posted as done, every block is already mounted
            segments = screen.last_answer().body.segments
            mounted.append([(b.name, b.source_range) for m in segments for b in m.children])

    mounted: list = []
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.load_text("A long story")
        await pilot.press("enter")
        await wait_for(pilot, lambda: done, what="the answer")
        segments = screen.last_answer().body.segments
        assert len(segments) == 1 and segments[0].source == text  # one parse, never streamed
        assert mounted[0] == [(t, tuple(r)) for t, r in _top_blocks(text)]
        lists = [block for block in segments[0].children if isinstance(block, FastList)]
        assert len(lists) == 40 and all(each.lines is not None for each in lists)  # every list one widget
        items = [line for each in lists for line in each.lines.text.splitlines()]
        assert items.count("nested point") == 20 and items.count("two") == 20


async def test_escape_while_a_whole_answer_is_laid_out_still_ends_the_answer(fake_server, fake_backend_settings,
                                                                             monkeypatch):
    # every chunk has arrived and the answer is being laid out when Esc comes (a long one takes a while):
    # the answer ends all the same, the input is free again, and the whole text is shown
    monkeypatch.setattr(chat, "BURST_RATE", 1000)
    monkeypatch.setattr(chat, "BURST_HOLD", 30.0)
    text = long_answer(80)
    fake_server.responder = Script([Reply(text)])
    done: list[AnswerDone] = []
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE, message_hook=lambda m: isinstance(m, AnswerDone) and done.append(m)) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.load_text("A long story")
        screen.prompt.area.focus()
        await pilot.pause()
        app.post_message(events.Key("enter", None))  # pilot.press waits for the app to be idle: laid out
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        def laying_out() -> bool:
            answer = screen.last_answer()
            return answer is not None and any(body.finishing for body in answer.query(AnswerBody))

        while not laying_out():
            assert loop.time() < deadline, "the answer was never laid out"
            await asyncio.sleep(0.001)  # not pilot.pause: that waits for the app to be idle
        answer = screen.last_answer()
        app.post_message(events.Key("escape", None))
        await wait_for(pilot, lambda: done and not answer.body.finishing, what="the answer's end")
        assert not screen.answering and not answer.streaming
        assert "".join(m.source for m in answer.body.segments) == text
        assert screen.service.turn().active.text == text


def test_full_collections_wait_for_the_last_hold_and_run_when_it_ends():
    thresholds = gc.get_threshold()
    full: list[int] = []

    def record(phase, info) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(record)
    try:
        collector.hold()
        collector.hold()  # two answers at once (a brainstorm's, a regenerate's)
        assert gc.get_threshold()[:2] == thresholds[:2] and gc.get_threshold()[2] > 10**9
        collector.release()
        assert collector.holding() and gc.get_threshold()[2] > 10**9 and not full
        collector.release()
        assert not collector.holding() and gc.get_threshold() == thresholds and full == [1]
        collector.release()  # an extra release changes nothing
        assert gc.get_threshold() == thresholds and full == [1]
        collector.hold()
        collector.hold()
        collector.release_all()  # the chat screen goes (a release waiting for its refresh never comes)
        assert not collector.holding() and gc.get_threshold() == thresholds and full == [1, 1]
    finally:
        gc.callbacks.remove(record)
        collector.release_all()


async def test_no_full_collection_while_an_answer_streams_and_one_after_it(fake_server, fake_backend_settings):
    # a full collection scans every widget of the conversation (0.14 s seen for one long answer): not in the
    # middle of the stream or at its end, but once the answer is on screen; a stopped answer releases it too
    thresholds = gc.get_threshold()
    events_seen: list[tuple[str, bool]] = []

    def record(phase, info) -> None:
        if phase == "stop" and info["generation"] == 2:
            events_seen.append(("full collection", collector.holding()))

    words = [f"word{i} " for i in range(60)]
    fake_server.responder = Script([Reply(chunks=words, chunk_delay=0.05), Reply("tick tock", fault="endless")])
    app = make_app(fake_backend_settings)
    gc.callbacks.append(record)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            screen = app.screen
            screen.prompt.area.load_text("Count")
            screen.prompt.area.focus()
            app.post_message(events.Key("enter", None))  # pilot.press waits for the app to be idle: streamed
            await wait_for(pilot, lambda: screen.answering and collector.holding(), what="the stream")
            assert gc.get_threshold()[:2] == thresholds[:2]  # young collections still run as before
            assert gc.get_threshold()[2] > 10**9
            await wait_for(pilot, lambda: not screen.answering, what="the answer")
            await wait_for(pilot, lambda: not collector.holding(), what="the release")
            assert gc.get_threshold() == thresholds
            assert events_seen and ("full collection", True) not in events_seen  # only the held one, after
            events_seen.clear()
            screen.prompt.area.load_text("Count forever")
            app.post_message(events.Key("enter", None))
            await wait_for(pilot, lambda: screen.answering and collector.holding(), what="the second stream")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not screen.answering and not collector.holding(), what="the stop")
            assert gc.get_threshold() == thresholds and ("full collection", False) in events_seen
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*thresholds)


class Growing(App):
    """An answer's body streamed into inside a scrolling chat, as in the app."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield AnswerBody()


def layouts_by_widget(monkeypatch) -> list:
    """The widgets whose children are laid out again (a cached arrangement is not laid out again)."""
    arranged: list = []
    original = VerticalLayout.arrange

    def recorded(self, parent, children, size, greedy=True):
        arranged.append(parent)
        return original(self, parent, children, size, greedy)

    monkeypatch.setattr(VerticalLayout, "arrange", recorded)
    return arranged


async def test_a_growing_answer_lays_out_only_its_last_segment(monkeypatch):
    # Textual keys a container's arrangement by the height of the container it is in: as the chat grew with
    # each write, every earlier segment (and every list in it) was laid out again (127 cache misses in the
    # last layout of a 5,000-token answer). With HeightFromWidth only what changed is.
    arranged = layouts_by_widget(monkeypatch)
    app = Growing()
    async with app.run_test(size=(60, 20)) as pilot:
        body = app.query_one(AnswerBody)
        await body.begin()
        text = long_answer(30)
        for start in range(0, len(text), 400):  # as a stream writes it: one segment after another
            await body.write(text[start:start + 400])
        await pilot.pause()
        await pilot.pause()
        *earlier, last = body.segments
        assert len(earlier) >= 2
        settled_height = body.region.height
        arranged.clear()
        for _ in range(3):
            await body.write("\n\n- one more point, long enough to wrap onto a second line at this width")
            await pilot.pause()
        assert body.region.height >= settled_height + 6  # it grew, and was laid out anew
        assert last in arranged or any(last in widget.ancestors for widget in arranged)
        again = [widget for widget in arranged
                 if any(widget is segment or segment in widget.ancestors for segment in earlier)]
        assert again == []


class Column(HeightFromWidth, Vertical):
    pass


class Sized(App):
    """Children of every kind of height, in a stock Vertical and in a HeightFromWidth one, side by side."""

    CSS = """
    Horizontal { height: 30; }
    Vertical, Column { height: auto; width: 1fr; }
    .cells { height: 3; } .tall { min-height: 4; max-height: 6; } .part { height: 40%; } .share { max-height: 50%; }
    """

    def __init__(self, classes: list[str]) -> None:
        super().__init__()
        self.child_classes = classes

    def compose(self) -> ComposeResult:
        text = "words that wrap onto more than one line in a narrow column " * 2
        with Horizontal():
            for kind, name in ((Vertical, "stock"), (Column, "ours")):
                with kind(id=name):
                    for child_class in self.child_classes:
                        yield Static(text, classes=child_class)


async def test_height_from_width_lays_out_exactly_as_textual_does():
    # children of an auto, fixed or bounded height: measured at the width alone; a height relative to the
    # container (%, and so fr): Textual's own measure
    for classes in (["", ""], ["", "cells", ""], ["tall", "", "tall"], ["", "part"], ["share", ""]):
        app = Sized(classes)
        async with app.run_test(size=(60, 40)) as pilot:
            await pilot.pause()
            stock, ours = app.query_one("#stock"), app.query_one("#ours")
            assert ours.region.height == stock.region.height > 0, classes
            assert [c.region.height for c in ours.children] == [c.region.height for c in stock.children]
