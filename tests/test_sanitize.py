"""Hostile bytes made safe for the terminal, with the visible text kept."""

import pytest

from taskdiv_chat.sanitize import for_display, is_clean

ESC = "\x1b"


@pytest.mark.parametrize("hostile, shown", [
    (f"{ESC}]0;pwned{ESC}\\title", "title"),  # window title, ST-terminated
    (f"{ESC}]0;pwned\x07title", "title"),  # window title, BEL-terminated
    (f"{ESC}]52;c;ZWNobyBoYWNrZWQ=\x07after", "after"),  # OSC 52 clipboard write
    (f"before{ESC}[2J{ESC}[Hafter", "beforeafter"),  # clear screen, cursor home
    (f"{ESC}[31mred{ESC}[0m", "red"),  # colours
    ("\x9b2Jx", "x"),  # 8-bit CSI
    ("\x9d0;t\x9cx", "x"),  # 8-bit OSC with 8-bit ST
    (f"{ESC}Pq#0;2;0;0;0{ESC}\\x", "x"),  # DCS (sixel)
    (f"{ESC}]8;;http://evil{ESC}\\link{ESC}]8;;{ESC}\\", "link"),  # hyperlink
    (f"{ESC}]0;never ended", ""),  # an unterminated string swallows to the end
    (f"a{ESC}7b{ESC}8c", "abc"),  # save / restore cursor
    (f"a{ESC}", "a"),  # a lone ESC at the end
])
def test_escape_sequences_removed(hostile, shown):
    assert for_display(hostile) == shown
    assert ESC not in for_display(hostile)


def test_other_controls_become_visible():
    assert for_display("ding\x07") == "ding\u2407"
    assert for_display("nul\x00") == "nul\u2400"
    assert for_display("back\x08space") == "back\u2408space"
    assert for_display("del\x7f") == "del\u2421"
    assert for_display("c1\x85") == "c1\ufffd"


def test_layout_kept():
    assert for_display("line 1\n\tline 2") == "line 1\n\tline 2"
    assert for_display("crlf\r\nline") == "crlf\nline"
    assert for_display("over\rwrite") == "over\nwrite"  # a lone CR can't overwrite a line


def test_bidi_overrides_and_surrogates():
    assert for_display("abc\u202edcba") == "abc\ufffddcba"
    assert for_display("lone \ud800 surrogate") == "lone \ufffd surrogate"


def test_ordinary_text_untouched():
    text = "Ünïcödé, emoji 🎲, CJK 漢字, maths ∑ x² — and `code`"
    assert for_display(text) == text
    assert is_clean(text)
    assert not is_clean(f"{ESC}[2J")


def test_input_drops_whole_sequences_and_controls():
    from taskdiv_chat.sanitize import for_input

    assert for_input(f"copy{ESC}]52;c;cm0gLXJmIH4=\x07 this\x07\r\n\tnext") == "copy this\n\tnext"
