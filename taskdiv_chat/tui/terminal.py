"""Terminal input that a paste cannot break out of, and alt+enter as the terminal sent it.

Textual's XTermParser reads a bracketed paste character by character, and an ESC
inside the paste sends it down its escape-sequence path: the characters after it
never reach the paste and are replayed as key presses (a pasted BEL became ctrl+g,
a pasted CR became Enter and sent a half message). Its Linux driver also decodes
stdin as strict UTF-8, so one stray byte (0x9b) raised UnicodeDecodeError and
ended the app.

Most terminals (xterm, VTE, iTerm2 with Option as Esc+) and tmux send alt+enter as
ESC CR; XTermParser drops the alt of a key it names from a table (enter, tab,
backspace), so alt+enter, a newline key, arrived as enter and sent the message.

SafeXTermParser takes a bracketed paste out of the input before XTermParser sees
it: everything between ESC[200~ and ESC[201~ becomes one Paste event, exactly as
pasted (minus NUL, as Textual does); and it keeps the alt of ESC-prefixed keys.
SafeLinuxDriver uses it and decodes invalid UTF-8 as U+FFFD.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from typing import Iterable

from textual import constants, events
from textual._loop import loop_last
from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START, XTermParser
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message


def _partial_marker(data: str, marker: str) -> int:
    """Length of the longest tail of `data` that is the start of `marker`, else 0."""
    for size in range(min(len(marker) - 1, len(data)), 0, -1):
        if marker.startswith(data[-size:]):
            return size
    return 0


class SafeXTermParser(XTermParser):
    """XTermParser with bracketed pastes taken out whole, whatever they contain."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._paste: list[str] | None = None  # the paste read so far, while inside one
        self._held = ""  # the start of a marker cut off at the end of a read
        self._held_at = 0.0

    def _sequence_to_key_events(self, sequence: str, alt: bool = False) -> Iterable[events.Key]:
        for event in super()._sequence_to_key_events(sequence, alt):
            if alt and not event.key.startswith("alt+"):  # ESC CR: alt+enter, not enter
                event = events.Key(f"alt+{event.key}", None)
            yield event

    def tick(self) -> Iterable[Message]:
        # Outside a paste, what was held back as a possible marker start is keys (Escape, alt+[) if nothing
        # followed within ESCAPE_DELAY; it has waited that long already, so XTermParser resolves it at once.
        if self._held and self._paste is None and get_time() - self._held_at >= constants.ESCAPE_DELAY:
            held, self._held = self._held, ""
            yield from super().feed(held)
            if self._timeout_time is not None:
                self._timeout_time = get_time()
        yield from super().tick()

    def feed(self, data: str) -> Iterable[Message]:
        if not data:  # end of input
            if self._paste is not None:
                yield events.Paste("".join(self._paste).replace("\x00", ""))
                self._paste = None
            yield from super().feed(self._held) if self._held else ()
            yield from super().feed("")
            return
        data, self._held = self._held + data, ""
        while data:
            if self._paste is None:
                start = data.find(BRACKETED_PASTE_START)
                if start < 0:
                    keep = _partial_marker(data, BRACKETED_PASTE_START)
                    data, self._held, self._held_at = data[:len(data) - keep], data[len(data) - keep:], get_time()
                    if data:
                        yield from super().feed(data)
                    return
                if start:
                    yield from super().feed(data[:start])
                self._paste = []
                data = data[start + len(BRACKETED_PASTE_START):]
            else:
                end = data.find(BRACKETED_PASTE_END)
                if end < 0:
                    keep = _partial_marker(data, BRACKETED_PASTE_END)
                    self._paste.append(data[:len(data) - keep])
                    self._held = data[len(data) - keep:]
                    return
                self._paste.append(data[:end])
                yield events.Paste("".join(self._paste).replace("\x00", ""))
                self._paste = None
                data = data[end + len(BRACKETED_PASTE_END):]


class SafeLinuxDriver(LinuxDriver):
    """Textual's Linux driver with SafeXTermParser and a UTF-8 decoder that replaces invalid bytes."""

    def run_input_thread(self) -> None:
        # LinuxDriver.run_input_thread (Textual 8.2) with those two changes.
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = SafeXTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")(errors="replace").decode

        def process_selector_events(selector_events, final: bool = False) -> None:
            for last, (_key, mask) in loop_last(selector_events):
                if mask & selectors.EVENT_READ:
                    unicode_data = decode(os.read(fileno, 1024 * 4), final=final and last)
                    if not unicode_data:
                        break
                    for event in parser.feed(unicode_data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process_selector_events(selector.select(0.1))
            selector.unregister(self.fileno)
            process_selector_events(selector.select(0.1), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
