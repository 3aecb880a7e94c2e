"""Hostile bytes made safe for the terminal, with the visible text kept."""

import pytest

from taskdiv_chat.sanitize import for_display, for_input

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
    (f"{ESC}]0;never ended", "0;never ended"),  # an unterminated string loses only its introducer
    (f"{ESC}]0;no end\nnext\x07 line", "0;no end\nnext\u2407 line"),  # a string ends with its line
    (f"{ESC}Pq no end", "q no end"),
    ("\x9d0;no end", "0;no end"),
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


def test_mojibake_c1_bytes_do_not_eat_the_text_after_them():
    # UTF-8 quotes read as Latin-1: U+009D and U+009C look like OSC and ST.
    assert for_input("He said \u00e2\x80\x9dhello \u2026 I typed") == "He said \u00e2hello \u2026 I typed"
    assert for_display("\u00e2\x80\x98x\u00e2\x80\x9d rest\nline 2") == "\u00e2\ufffdx\u00e2\ufffd rest\nline 2"


def test_input_drops_whole_sequences_and_controls():
    assert for_input(f"copy{ESC}]52;c;cm0gLXJmIH4=\x07 this\x07\r\n\tnext") == "copy this\n\tnext"


# --- streamed text: sequences cut between pieces ---------------------------------------------

from taskdiv_chat.sanitize import DisplayStream, json_for_display  # noqa: E402

STREAMED = (f"Hi {ESC}]0;pwned{ESC}\\there{ESC}[2J{ESC}[H ok\r\nnext\x9b31mred{ESC}]52;c;ZWNobw==\x07 "
            f"{ESC}7a{ESC}8b{ESC}(Bc\x90dcs\x9c end\r"
            # an open string holding other introducers; strings with no terminator on their line
            f"hi {ESC}]52;c;abc\x9bxyz more\x07 end {ESC}]0;no end\nx\x9dmojibake {ESC}P{ESC}[1m\r\nz")


def shown_in_pieces(text: str, cuts: list[int]) -> str:
    screen = DisplayStream()
    bounds = [0, *cuts, len(text)]
    return "".join(screen.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])) + screen.flush()


def test_stream_cut_anywhere_shows_what_the_whole_text_shows():
    whole = for_display(STREAMED)
    for i in range(1, len(STREAMED)):
        assert shown_in_pieces(STREAMED, [i]) == whole, i
        for j in range(i + 1, min(i + 6, len(STREAMED))):
            assert shown_in_pieces(STREAMED, [i, j]) == whole, (i, j)


def test_stream_holds_back_only_what_may_continue():
    screen = DisplayStream()
    assert screen.feed("plain words ") == "plain words "
    assert screen.feed(f"then {ESC}]0;ti") == "then "  # an unfinished title is held
    assert screen.feed("tle\x07 after") == " after"
    assert screen.feed("line\r") == "line"  # maybe CR LF: wait for the next piece
    assert screen.feed("\nmore") == "\nmore"
    assert screen.feed(f"{ESC}[1") == ""
    assert screen.flush() == ""  # a sequence cut off at the very end is dropped, as for_display drops it


def test_stream_does_not_hold_forever():
    screen = DisplayStream()
    out = screen.feed(f"{ESC}]0;" + "x" * (DisplayStream.HOLD_MAX + 10))
    out += screen.feed(" visible")
    assert out.endswith(" visible") and ESC not in out


def test_json_for_display_escapes_what_json_leaves_raw():
    import json

    text = json.dumps({"t": "a\x9b31m\u202eb\x7f"}, ensure_ascii=False)
    safe = json_for_display(text)
    assert json.loads(safe) == json.loads(text)
    assert not any(c in safe for c in "\x9b\u202e\x7f")
