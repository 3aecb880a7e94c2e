"""The fast start of `taskdiv-chat`: paint first, read the config after.

Importing and validating the config (pydantic) and building the chat screen cost
as much as starting Textual itself. BootScreen shows the chat's frame with the
input ready while they load in a thread; then the app switches to its chat mode
(and removes this one); the chat screen gets whatever was typed meanwhile (and
sends it if Enter was pressed), see ChatScreen._take_handover.
This module stays light: it is imported before the first paint.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from .widgets.prompt import PromptArea, PromptBar


class BootScreen(Screen):
    """The chat's layout without its services: typing works, sending waits for the config."""

    def __init__(self) -> None:
        super().__init__()
        self.send_pending = False  # Enter pressed before the chat screen was ready

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                with Vertical(id="chat"):
                    yield Static("Starting…", id="empty")
                yield PromptBar(id="prompt-bar")

    def on_mount(self) -> None:
        self.query_one(PromptArea).focus()
        # The footer (a widget per key, styled and laid out) comes after the first frame, not before it.
        self.call_after_refresh(self.mount, Footer())

    @on(PromptArea.Submitted)
    def _send_later(self, event: PromptArea.Submitted) -> None:
        event.stop()
        self.send_pending = True

    def typed(self) -> tuple[str, str, bool]:
        """(text, attachment, send pending) typed so far."""
        bar = self.query_one(PromptBar)
        return bar.area.text, bar.attachment, self.send_pending
