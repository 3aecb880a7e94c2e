"""A turn sent to several models: their answers side by side (stacked when the terminal is narrow),
each labelled with its model and streaming on its own, under the cross-model badge."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from ...sanitize import for_display
from .. import bindings
from .messages import Badge

STACK_BELOW = 90  # columns: narrower than this, the answers go one under the other
RENDER_EVERY = 0.08  # s: a pane shows what arrived at most this often (one layout per chunk costs)


class ComparePane(Vertical, can_focus=True):
    """One model's answer as it streams; Enter continues the conversation from it."""

    BINDINGS = bindings.COMPARE
    DEFAULT_CSS = """
    ComparePane { width: 1fr; height: auto; border: round $panel; padding: 0 1; }
    ComparePane:focus { border: round $accent; }
    ComparePane.-failed { border: round $error; }
    ComparePane.-chosen { border: double $success; }
    ComparePane > .model { text-style: bold; color: $accent; }
    ComparePane > .state { color: $text-muted; }
    ComparePane.-failed > .state { color: $error; }
    """

    class Chosen(Message):
        def __init__(self, pane: "ComparePane") -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, index: int, label: str) -> None:
        super().__init__(id=f"pane-{index}")
        self.index, self.label = index, label
        self.parts: list[str] = []
        self.variant = None  # the service's Variant once the answer is stored (its id may come later)
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield Static(Content(for_display(self.label)), classes="model")
        yield Static("", classes="text")
        yield Static("streaming…", classes="state")

    def on_mount(self) -> None:
        self.set_interval(RENDER_EVERY, self._render_text)

    @property
    def variant_id(self) -> int | None:
        """The answer's row id: a write kept during a store outage gives the Variant its id when it lands."""
        return self.variant.id if self.variant is not None else None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self._dirty = True

    def _render_text(self) -> None:
        if self._dirty:
            self._dirty = False
            self.query_one(".text", Static).update(Content(for_display(self.text)))

    def finish(self, variant, error: str | None = None) -> None:
        """The stored answer (its exact text) and how it ended; a failure stays in its pane."""
        if variant is not None:
            self.variant = variant
            self.parts = [variant.text]
            self._dirty = True
        self._render_text()
        self.set_class(bool(error), "-failed")
        state = f"✗ {error}" if error else f"done · {bindings.keys_for_id(self.app, 'compare_choose')} continues from here"
        self.query_one(".state", Static).update(Content(for_display(state)))

    def action_choose(self) -> None:
        if self.variant_id is not None:
            self.post_message(self.Chosen(self))
        elif self.variant is not None:  # stored while the history could not be written
            self.app.notify("This answer is not in the history yet (saving is retried); choose it once it is.",
                            severity="warning", timeout=5)


class CompareView(Vertical):
    """The cross-model badge, then one pane per answer."""

    DEFAULT_CSS = """
    CompareView { height: auto; margin: 0 0 1 0; }
    CompareView > #panes { layout: horizontal; height: auto; }
    CompareView.-stacked > #panes { layout: vertical; }
    CompareView.-stacked ComparePane { width: 1fr; }
    """

    def __init__(self, turn_id: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.turn_id = turn_id

    def compose(self) -> ComposeResult:
        yield Badge(self.turn_id, id="cross-badge")
        yield Container(id="panes")

    def on_resize(self) -> None:
        self.set_class(self.size.width < STACK_BELOW, "-stacked")

    @property
    def badge(self) -> Badge:
        return self.query_one("#cross-badge", Badge)

    @property
    def panes(self) -> list[ComparePane]:
        return list(self.query(ComparePane))

    def pane(self, index: int) -> ComparePane | None:
        return next((p for p in self.panes if p.index == index), None)

    async def add_pane(self, index: int, label: str) -> ComparePane:
        pane = self.pane(index)
        if pane is None:  # in the order of the backends, whichever starts first
            pane = ComparePane(index, label)
            later = next((p for p in self.panes if p.index > index), None)
            await self.query_one("#panes").mount(pane, before=later)
        return pane
