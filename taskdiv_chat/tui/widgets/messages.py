"""The conversation: user turns with their category chip, answers with footer, variant navigator and badge."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Static

from ... import taxonomy
from ...sanitize import for_display
from .. import bindings

_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of an answer, in order."""
    return [m.group(2).rstrip("\n") for m in _FENCE.finditer(markdown)]


@dataclass
class VariantView:
    """What an answer shows about one variant (built from the store's Variant)."""

    id: object
    text: str
    backend: str = ""
    model: str = ""
    tokens: int | None = None
    seconds: float | None = None
    finish_reason: str | None = None  # None when whole; length | cancelled | error | crash | streaming | ...
    error: str | None = None
    strategy: str | None = None
    source: object = field(default=None, repr=False, compare=False)  # the service's Variant, if made from one

    @property
    def stored_id(self):
        """The variant's row id now: a write kept during a store outage gives the service's Variant its id
        when it lands, after this view was made."""
        return self.source.id if self.source is not None else self.id


def model_label(backend: str, model: str, is_local: bool) -> str:
    """"fake · test-model"; the embedded model is labelled for what it is: "local · SmolLM2-135M (demo quality)"."""
    if is_local:
        return f"{backend} · {model.replace('-Instruct', '')} (demo quality)"
    return f"{backend} · {model}" if model else backend


# Why an answer is not whole, by the store's finish reason (any other reason but stop and error is shown as is).
_CUTOFF = {"cancelled": "✂ cut off", "length": "✂ cut off (length limit)",
           "crash": "✂ cut off (the app stopped while it was answering)",
           "streaming": "… still being written by another taskdiv-chat"}


def cutoff_label(finish_reason: str | None) -> str:
    if finish_reason in (None, "stop", "error"):  # an error has its own box
        return ""
    return _CUTOFF.get(finish_reason, f"✂ cut off ({finish_reason})")


class CategoryChip(Static):
    """Letter and short name of a turn's category, coloured per category; click to override."""

    DEFAULT_CSS = """
    CategoryChip { width: auto; height: 1; padding: 0 1; margin-right: 1; text-style: bold; color: #ffffff; background: $panel; }
    CategoryChip.-pending { color: $text-muted; text-style: italic; }
    CategoryChip:hover { text-style: bold reverse; }
    """

    class Pressed(Message):
        def __init__(self, turn_id) -> None:
            super().__init__()
            self.turn_id = turn_id

    letter: reactive[str | None] = reactive(None)

    def __init__(self, turn_id, letter: str | None = None, overridden: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn_id = turn_id
        self.overridden = overridden
        self.set_reactive(CategoryChip.letter, letter)

    def on_mount(self) -> None:
        keys = bindings.keys_for_id(self.app, "pick_category")
        self.tooltip = f"Category of this message (click or {keys} to change)"
        self._paint()

    def watch_letter(self) -> None:
        self._paint()

    def set_category(self, letter: str | None, overridden: bool = False) -> None:
        self.overridden = overridden
        self.letter = letter
        self._paint()

    def _paint(self) -> None:
        letter = self.letter
        self.set_class(letter is None, "-pending")
        if letter is None:
            self.update("classifying…")
            self.styles.background = None
            return
        category = taxonomy.get(letter)
        mark = " ✎" if self.overridden else ""
        if category is None:
            self.update(f"? other{mark}")
            self.styles.background = "#777777"
        else:
            self.update(f"{category.letter} {category.short}{mark}")
            self.styles.background = category.color

    def on_click(self) -> None:
        self.post_message(self.Pressed(self.turn_id))


class UserMessage(Vertical):
    DEFAULT_CSS = """
    UserMessage { height: auto; margin: 1 1 0 1; padding: 0 1; border-left: thick $primary; background: $boost; }
    UserMessage #user-head { height: 1; }
    UserMessage .role { color: $text-muted; width: auto; }
    UserMessage #user-text { height: auto; }
    """

    def __init__(self, turn_id, text: str, letter: str | None = None, overridden: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn_id = turn_id
        self.text = text
        self._letter = letter
        self._overridden = overridden

    def compose(self) -> ComposeResult:
        with Horizontal(id="user-head"):
            yield CategoryChip(self.turn_id, self._letter, self._overridden)
            yield Static("you", classes="role")
        yield Static(Content(for_display(_preview(self.text))), id="user-text")

    @property
    def chip(self) -> CategoryChip:
        return self.query_one(CategoryChip)


def _preview(text: str, limit: int = 4000) -> str:
    """Very long messages are shown cut (the whole text is kept and sent)."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"


class Badge(Static):
    """Unique/total and the verdict for the category, coloured by status; click for the detail."""

    DEFAULT_CSS = """
    Badge { width: auto; height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    Badge.-good { background: $success 40%; color: $text; }
    Badge.-warn { background: $warning 40%; color: $text; }
    Badge.-bad { background: $error 45%; color: $text; }
    Badge.-pending { text-style: italic; }
    Badge:hover { text-style: reverse; }
    """

    class Pressed(Message):
        def __init__(self, turn_id) -> None:
            super().__init__()
            self.turn_id = turn_id

    def __init__(self, turn_id, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.turn_id = turn_id
        self.display = False

    def on_mount(self) -> None:
        self.tooltip = (f"Diversity of the regenerated answers (click or "
                        f"{bindings.keys_for_id(self.app, 'badge_detail')} for the detail)")

    def show_text(self, text: str, status: str = "pending") -> None:
        self.display = True
        self.update(Content(for_display(text)))
        for name in ("good", "warn", "bad", "pending"):
            self.set_class(name == status, f"-{name}")

    def on_click(self) -> None:
        self.post_message(self.Pressed(self.turn_id))


class VariantNav(Static):
    DEFAULT_CSS = """
    VariantNav { width: auto; height: 1; padding: 0 1; color: $accent; }
    """

    class Step(Message):
        def __init__(self, nav: "VariantNav", step: int) -> None:
            super().__init__()
            self.nav = nav
            self.step = step

    def set_position(self, index: int, total: int) -> None:
        self.display = total > 1
        self.update(f"← {index + 1}/{total} →")

    def on_click(self, event) -> None:
        # Left half steps back, right half forward.
        self.post_message(self.Step(self, -1 if event.x < self.size.width // 2 else 1))


MODEL_MIN_WIDTH = 24  # below this the footer's navigator and badge go to a line of their own


class AssistantMessage(Vertical, can_focus=True):
    """One answer (the active variant of a turn) with its footer."""

    BINDINGS = bindings.MESSAGE
    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 1 0 1; padding: 0 0; }
    AssistantMessage:focus { background: $boost; }
    AssistantMessage #footer { height: auto; padding: 0 1; }
    AssistantMessage #footer.-stacked { layout: vertical; }
    AssistantMessage #info { width: 1fr; height: 1; }
    AssistantMessage #marks { width: auto; height: 1; }
    AssistantMessage #footer.-stacked #marks { width: 1fr; height: auto; }
    AssistantMessage #footer.-stacked Badge { width: 1fr; height: auto; }
    AssistantMessage #model { width: auto; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    AssistantMessage #figures { width: auto; color: $text-muted; text-wrap: nowrap; }
    AssistantMessage #cutoff { width: auto; color: $warning; margin-left: 1; }
    AssistantMessage #error-box { height: auto; display: none; padding: 0 1; }
    AssistantMessage #error-box.-shown { display: block; }
    AssistantMessage #error-text { color: $error; height: auto; }
    AssistantMessage #retry { margin-top: 0; }
    """

    class Navigate(Message):
        def __init__(self, widget: "AssistantMessage", step: int) -> None:
            super().__init__()
            self.widget = widget
            self.step = step

    class Retry(Message):
        def __init__(self, widget: "AssistantMessage") -> None:
            super().__init__()
            self.widget = widget

    class Copy(Message):
        def __init__(self, widget: "AssistantMessage", code: bool) -> None:
            super().__init__()
            self.widget = widget
            self.code = code

    def __init__(self, turn_id, variants: list[VariantView] | None = None, index: int = 0,
                 is_local: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn_id = turn_id
        self.variants: list[VariantView] = list(variants or [])
        self.index = index
        self.is_local = is_local
        self.streaming = False
        self.busy: str | None = None  # what the footer says instead of the shown variant's figures (brainstorm)
        self.initial_badge: tuple[str, str] | None = None  # (text, status) from saved metrics
        self._fitted_width = -1  # the width the footer was last fitted to on a resize

    def compose(self) -> ComposeResult:
        current = self.current
        from .answer_body import AnswerBody  # Markdown loads after the first paint

        yield AnswerBody(current.text if current else "")
        with Vertical(id="error-box"):
            yield Static(id="error-text")
            yield Button(f"Retry ({bindings.keys_for_id(self.app, 'retry', first=True)})", id="retry",
                         variant="warning", compact=True)
        # The model name is what gets cut when the line is short; the figures stay whole, and the
        # navigator and badge move to a line of their own when they would not fit beside them.
        with Horizontal(id="footer"):
            with Horizontal(id="info"):
                yield Static(id="model")
                yield Static(id="figures")
                yield Static(id="cutoff")
            with Horizontal(id="marks"):
                yield VariantNav(id="nav")
                yield Badge(self.turn_id, id="badge")

    def on_mount(self) -> None:
        if not self.query("#model"):  # a quit pruned the children before this Mount was handled
            return
        self.refresh_footer()
        if self.initial_badge:
            self.badge.show_text(*self.initial_badge)

    # --- state -----------------------------------------------------------------------------

    @property
    def current(self) -> VariantView | None:
        return self.variants[self.index] if 0 <= self.index < len(self.variants) else None

    @property
    def body(self):
        """The AnswerBody (widgets/answer_body.py)."""
        return self.query_one("AnswerBody")

    @property
    def meta_text(self) -> str:
        """The footer's model and figures as shown (before any cut for width)."""
        return "".join(str(self.query_one(name, Static).render()) for name in ("#model", "#figures"))

    @property
    def badge(self) -> Badge:
        return self.query_one(Badge)

    def show_badge(self, text: str, status: str) -> None:
        """Show on the badge, if the answer still has one: a measurement may end after the answer was pruned."""
        for footer in self.query_children("#footer"):
            for badge in footer.query(Badge):
                badge.show_text(text, status)
            self.call_after_refresh(self._fit_footer)  # the badge's new width

    async def add_variant(self, variant: VariantView, streaming: bool = True) -> None:
        """A new variant: it becomes the shown one (streamed into when `streaming`)."""
        self.variants.append(variant)
        self.index = len(self.variants) - 1
        if streaming:
            await self.body.begin()
        else:
            await self.body.reset(variant.text)
        self.refresh_footer()

    async def show(self, index: int) -> None:
        if not 0 <= index < len(self.variants):
            return
        self.index = index
        await self.body.reset(self.current.text)
        self.refresh_footer()

    def refresh_footer(self) -> None:
        variant = self.current
        model, figures, cutoff = "", "", ""
        error = None
        if self.busy:
            model = self.busy
        elif variant is not None:
            model = model_label(variant.backend, variant.model, self.is_local)
            parts = []
            if variant.tokens is not None:
                parts.append(f"{variant.tokens} tok")
            if variant.seconds is not None:
                parts.append(f"{variant.seconds:.1f} s")
            if variant.strategy and len(self.variants) > 1:
                parts.append(variant.strategy)
            if self.streaming:
                parts.append("…")
            figures = "".join(f" · {part}" for part in parts)
            cutoff = cutoff_label(variant.finish_reason)
            error = variant.error
        footer = self._footer
        footer.query_one("#model", Static).update(Content(for_display(model)))
        footer.query_one("#figures", Static).update(Content(for_display(figures)))
        footer.query_one("#cutoff", Static).update(cutoff)
        box = self.query_children("#error-box").first()
        box.set_class(bool(error), "-shown")
        if error:
            box.query_one("#error-text", Static).update(Content(for_display(f"⚠ {error}")))
        footer.query_one(VariantNav).set_position(self.index, len(self.variants))
        self.call_after_refresh(self._fit_footer)

    @property
    def _footer(self) -> Horizontal:
        """The footer row (a child: found without walking the body's blocks, thousands in a long answer)."""
        return self.query_children("#footer").first(Horizontal)

    def _fit_footer(self) -> None:
        """Stack the navigator and badge under the figures when one line cannot hold them all,
        and cut the model name to what is left of its line."""
        footer = self._footer
        width = footer.content_size.width
        if not width:
            return

        def used(selector: str) -> int:  # (queried in the footer: the body above may hold thousands of widgets)
            return sum(widget.get_content_width(footer.size, footer.size) + widget.styles.gutter.width
                       + widget.styles.margin.width for widget in footer.query(selector) if widget.display)

        figures, marks = used("#figures, #cutoff"), used("#nav, #badge")
        stacked = MODEL_MIN_WIDTH + figures + marks > width
        footer.set_class(stacked, "-stacked")
        footer.query_one("#model").styles.max_width = max(1, width - figures - (0 if stacked else marks))

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._fitted_width:  # a streaming answer grows in height many times over
            self._fitted_width = event.size.width
            self._fit_footer()

    # --- actions -----------------------------------------------------------------------------

    def action_variant(self, step: int) -> None:
        self.post_message(self.Navigate(self, step))

    def action_copy(self) -> None:
        self.post_message(self.Copy(self, code=False))

    def action_copy_code(self) -> None:
        self.post_message(self.Copy(self, code=True))

    def action_detail(self) -> None:
        self.post_message(Badge.Pressed(self.turn_id))

    @on(VariantNav.Step)
    def _nav_step(self, event: VariantNav.Step) -> None:
        event.stop()
        self.post_message(self.Navigate(self, event.step))

    @on(Button.Pressed, "#retry")
    def _retry(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Retry(self))


class Notice(Static):
    """A line from the app inside the conversation (e.g. a message that was not sent)."""

    DEFAULT_CSS = """
    Notice { margin: 1 1 0 1; padding: 0 1; color: $warning; height: auto; }
    """


class ChatLog(VerticalScroll):
    """The scrolling conversation; anchored so it follows new text only while the user is at the bottom."""

    DEFAULT_CSS = """
    ChatLog { height: 1fr; padding-bottom: 1; }
    ChatLog #empty { color: $text-muted; margin: 2 2; }
    """

    def on_mount(self) -> None:
        self.anchor()
