"""The fast start of `taskdiv-chat`: paint first, read the config after.

Importing and validating the config (pydantic) and building the chat screen cost
as much as starting Textual itself. BootScreen shows the chat's frame with the
input ready while they load in a thread; then the app swaps in the chat screen,
which gets whatever was typed meanwhile (and sends it if Enter was pressed).
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
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PromptArea).focus()

    @on(PromptArea.Submitted)
    def _send_later(self, event: PromptArea.Submitted) -> None:
        event.stop()
        self.send_pending = True

    def typed(self) -> tuple[str, str, bool]:
        """(text, attachment, send pending) typed so far."""
        bar = self.query_one(PromptBar)
        return bar.area.text, bar.attachment, self.send_pending


def handover_screen(text: str, attachment: str, send: bool) -> Screen:
    """The chat screen, which adds what was typed on the boot screen once it has opened its
    conversation (after the saved draft is restored, so neither is lost)."""
    from .chat import ChatScreen

    class HandoverChatScreen(ChatScreen):
        async def _after_first_paint(self) -> None:
            early = self.prompt.area.text  # typed in the moment between the swap and the draft restore
            await super()._after_first_paint()
            if self.app.store is None:  # the store could not be opened: the app is exiting
                return
            bar = self.prompt
            draft = bar.area.text
            parts = [draft] + [t for t in (early, text) if t and t not in draft]
            if len(parts) > 1:
                bar.area.load_text("\n".join(p for p in parts if p))
                bar.area.move_cursor(bar.area.document.end)
            if attachment:
                bar.set_attachment(f"{bar.attachment}\n\n{attachment}" if bar.attachment else attachment)
            if send:
                bar.area.action_send()

    return HandoverChatScreen()
