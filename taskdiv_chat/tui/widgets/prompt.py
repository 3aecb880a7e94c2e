"""The message input: Enter sends, ctrl+j / alt+enter insert a newline, Up/Down walk the history.

Huge pastes do not go into the text area (a 1 MB line takes seconds per key
there): they become an attachment shown above the input and sent with the
message. Control characters are stripped on the way in.
"""

from __future__ import annotations


from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Static, TextArea

from ...sanitize import for_input
from .. import bindings

ATTACH_OVER_CHARS = 16_000  # above this a paste becomes an attachment


def clean_text(text: str) -> str:
    """Line ends to \\n, whole escape sequences and other control characters (NUL, bells) removed; tabs kept."""
    return for_input(text)


class CleanInput(Input):
    """A one-line input whose pastes are cleaned like the message input's (no escape sequences)."""

    def _on_paste(self, event: events.Paste) -> None:
        event.prevent_default()  # Input's own handler would insert the raw text as well
        super()._on_paste(events.Paste(clean_text(event.text)))
        event.stop()


class PromptArea(TextArea):
    BINDINGS = bindings.PROMPT

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class BigPaste(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, tab_behavior="focus", compact=True, show_line_numbers=False,
                         placeholder="Message", **kwargs)
        self.sent_history: list[str] = []
        self._history_pos: int | None = None  # None: editing a fresh message
        self._unsent = ""

    def on_mount(self) -> None:
        keys = lambda binding_id: bindings.keys_for_id(self.app, binding_id, first=True)  # noqa: E731
        self.placeholder = (f"Message  ({keys('send')} send · {keys('newline')} newline · "
                            f"{keys('history_prev')} history · {keys('help')} keys)")

    def action_send(self) -> None:
        self.post_message(self.Submitted(self.text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_history(self, step: int) -> None:
        row, _ = self.cursor_location
        at_edge = row == 0 if step < 0 else row == self.document.line_count - 1
        if not at_edge or not self.sent_history:
            self.action_cursor_up() if step < 0 else self.action_cursor_down()
            return
        if self._history_pos is None:
            if step > 0:
                return
            self._unsent = self.text
            pos = len(self.sent_history) - 1
        else:
            pos = self._history_pos + step
        if pos < 0:
            return
        if pos >= len(self.sent_history):
            self._history_pos = None
            self.load_text(self._unsent)
        else:
            self._history_pos = pos
            self.load_text(clean_text(self.sent_history[pos]))  # stored text: it may hold escape sequences
        self.move_cursor(self.document.end if step > 0 else (0, 0))

    def remember(self, text: str) -> None:
        if text and (not self.sent_history or self.sent_history[-1] != text):
            self.sent_history.append(text)
        self._history_pos = None

    async def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        text = clean_text(event.text)
        if len(text) > ATTACH_OVER_CHARS:
            self.post_message(self.BigPaste(text))
            return
        if result := self._replace_via_keyboard(text, *self.selection):
            self.move_cursor(result.end_location)


class PromptBar(Vertical):
    """The input plus the attachment line for a huge paste."""

    DEFAULT_CSS = """
    PromptBar { height: auto; max-height: 12; border-top: solid $panel; padding: 0 1; }
    PromptBar PromptArea { height: auto; max-height: 10; min-height: 2; background: $surface; }
    PromptBar #attachment { height: 1; display: none; }
    PromptBar #attachment.-shown { display: block; }
    PromptBar #attachment Static { width: 1fr; color: $warning; }
    PromptBar #attachment Button { min-width: 10; height: 1; border: none; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.attachment = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="attachment"):
            yield Static(id="attachment-label")  # its "remove" button comes with the first attachment
        yield PromptArea(id="prompt")

    @property
    def area(self) -> PromptArea:
        return self.query_one(PromptArea)

    @property
    def full_text(self) -> str:
        """What Send sends: the typed text, then the attachment."""
        return "\n\n".join(part for part in (self.area.text.strip("\n"), self.attachment) if part)

    def set_attachment(self, text: str) -> None:
        self.attachment = text
        box = self.query_one("#attachment")
        box.set_class(bool(text), "-shown")
        if text and not box.query("#remove-attachment"):  # made here: a Button before the first paint costs
            box.mount(Button("remove", id="remove-attachment", compact=True))
        if text:
            lines = text.count("\n") + 1
            self.query_one("#attachment-label", Static).update(
                f"📎 pasted text attached: {len(text):,} characters, {lines:,} lines (sent with the message)")

    def set_text(self, text: str) -> None:
        """Restore a draft or a message that was not sent (a huge one goes back to the attachment)."""
        text = clean_text(text)
        if len(text) > ATTACH_OVER_CHARS:
            self.area.load_text("")
            self.set_attachment(text)
        else:
            self.area.load_text(text)
            self.set_attachment("")
        self.area.move_cursor(self.area.document.end)

    def clear(self) -> None:
        self.area.load_text("")
        self.set_attachment("")

    @on(PromptArea.BigPaste)
    def _big_paste(self, event: PromptArea.BigPaste) -> None:
        event.stop()
        self.set_attachment(event.text if not self.attachment else self.attachment + "\n\n" + event.text)

    @on(Button.Pressed, "#remove-attachment")
    def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        self.set_attachment("")
        self.area.focus()
