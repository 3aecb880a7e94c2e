"""The status bar: backend and model, context used vs window, strategy, background work."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from ...sanitize import for_display


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    StatusBar Static { width: auto; margin-right: 2; }
    StatusBar #backend { color: $text; text-style: bold; }
    StatusBar #context.-full { color: $error; text-style: bold; }
    StatusBar #hint { color: $warning; width: 1fr; text-align: right; margin-right: 0; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="backend")
        yield Static(id="context")
        yield Static(id="strategy")
        yield Static(id="activity")
        yield Static(id="hint")

    def set_backend(self, label: str, hint: str = "") -> None:
        self.query_one("#backend", Static).update(Content(for_display(label)))
        self.query_one("#hint", Static).update(Content(hint))

    def set_context(self, used: int | None, window: int) -> None:
        widget = self.query_one("#context", Static)
        # Past the window the exact count is not worth its cost (tokens.count_messages' limit).
        shown = "?" if used is None else f">{window:,}" if used > window else f"{used:,}"
        widget.update(f"ctx {shown}/{window:,}")
        widget.set_class(used is not None and used > window, "-full")

    def set_strategy(self, strategy: str) -> None:
        self.query_one("#strategy", Static).update(f"regen: {strategy}")

    def set_activity(self, text: str) -> None:
        self.query_one("#activity", Static).update(Content(text))
