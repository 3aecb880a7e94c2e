"""Text from a server, a file or a paste, made safe to show on a terminal.

Anything we did not write ourselves may carry escape sequences that retitle the
window, clear the screen or write the clipboard (OSC 52). `for_display` is the one
place that neutralises them; it is applied where text is shown, never where it is
stored, so the stored text stays exact.
"""

from __future__ import annotations

import re

# Whole escape sequences, removed: CSI (ESC [ or 0x9b ... final byte), OSC / DCS / SOS /
# PM / APC strings (ESC ] P X ^ _ or their C1 forms ... ended by BEL or ST on the same line),
# and the two-byte ESC x forms. A string with no terminator on its line loses only its
# introducer: a stray C1 byte (mojibake such as "\u00e2\x80\x9d") must not eat the text after it.
_STRING_INTRO = r"\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]"
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    rf"|(?:{_STRING_INTRO})(?:[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c))?"
    r"|\x1b[ -/]*[0-~]?"
)
# What is left of C0 / C1 (bar \n and \t), DEL, and the bidirectional overrides that can
# make text read differently from what it is ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _picture(match: re.Match) -> str:
    """A visible stand-in: U+2400-U+241F 'control pictures' for C0, '�' for the rest."""
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def for_display(text: str) -> str:
    """`text` with escape sequences removed and other control characters made visible.

    Newlines and tabs are kept; CR LF and lone CR become newlines (a lone CR would let
    a later line overwrite an earlier one on the terminal).
    """
    if not text:
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SEQUENCE.sub("", text)
    text = _CONTROL.sub(_picture, text)
    return _SURROGATE.sub("\ufffd", text)


def for_input(text: str) -> str:
    """`text` as the input box takes it: like `for_display`, but other control characters are dropped."""
    text = _SEQUENCE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


# A CSI or ESC x sequence that is complete as it stands (a two-byte ESC x whose x opens a
# longer form is not complete).
_COMPLETE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b(?:[ -/]+[0-~]|[0-OQ-WYZ\\`-~])")
# A string introducer, and what may follow it while a later piece can still end the string.
_STRING_START = re.compile(_STRING_INTRO)
_OPEN_STRING_BODY = re.compile(r"[^\x07\x1b\x9c\n\r]*\x1b?")


class DisplayStream:
    """for_display for text that arrives in pieces (a streamed answer).

    An escape sequence or a CR LF cut between two pieces is held back until it is
    complete, so the pieces shown add up to for_display of the whole text rather than
    leaving the tail of a window title on the screen. `flush()` at the end."""

    HOLD_MAX = 4096  # longer than any real sequence: past it the text is shown (made safe) anyway

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        cut = _unfinished_tail(text)
        self._held = text[cut:]
        return for_display(text[:cut])

    def flush(self) -> str:
        text, self._held = self._held, ""
        return for_display(text)


def _unfinished_tail(text: str) -> int:
    """Where the first sequence (or a CR) that the next piece may change starts; len(text) if none.

    Every sequence is looked at, not only the last: an open string may hold other introducers."""
    for match in _SEQUENCE.finditer(text, max(0, len(text) - DisplayStream.HOLD_MAX)):
        if _STRING_START.fullmatch(match.group()):  # no terminator yet: open if nothing has ended it
            if _OPEN_STRING_BODY.fullmatch(text, match.end()):
                return match.start()
        elif match.end() == len(text) and not _COMPLETE.fullmatch(match.group()):
            return match.start()
    return len(text) - 1 if text.endswith("\r") else len(text)


def json_for_display(text: str) -> str:
    """JSON text safe for a terminal and still the same JSON: C1 controls, DEL and the
    bidirectional overrides (which json.dumps(ensure_ascii=False) leaves raw) as \\u escapes."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
