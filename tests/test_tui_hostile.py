"""Hostile input in the TUI: escape sequences from a server or the store never reach the terminal,
a crash report shows no secret, and a paste stays a paste.

The terminal tests run the app with a driver that keeps every byte Textual writes (a headless
driver that says it is not headless, so the app renders as on a real terminal).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
import time

import pytest
from textual import events
from textual._xterm_parser import BRACKETED_PASTE_END, BRACKETED_PASTE_START
from textual.drivers.headless_driver import HeadlessDriver

from taskdiv_chat.store import Store
from taskdiv_chat.tui.chat import DRAFT_DELAY
from taskdiv_chat.tui.compat.terminal import SafeXTermParser
from taskdiv_chat.tui.widgets.answer_body import SHOW_CHARS
from taskdiv_chat.tui.widgets.prompt import clean_text
from tests.support import write_config
from tests.support.fake_server import Reply
from tests.support.pilot import (SIZE, Script, held_by_another_instance, make_app, send, settled, started,
                                  wait_for)

ESC = "\x1b"
# What was seen in the wild: retitle the window, clear the screen, put a command on the clipboard (OSC 52),
# ring the bell, recolour, and a bare C1 CSI.
TITLE_SEQ = f"{ESC}]0;PWNED-TITLE\x07"
CLEAR_SEQ = f"{ESC}[2J"
CLIPBOARD_SEQ = f"{ESC}]52;c;cm0gLXJmIH4=\x07"  # base64 of "rm -rf ~"
HOSTILE = f"Hello {TITLE_SEQ}there{CLEAR_SEQ} and {CLIPBOARD_SEQ} bell\x07 {ESC}[31mred{ESC}[0m \x9b2J end"
# Pieces that must never appear in what the app writes to the terminal.
# (Textual itself writes OSC 22, ended by BEL, to set the mouse pointer.)
FORBIDDEN = ("PWNED-TITLE", "]0;", CLEAR_SEQ, "]52;c;cm0g", "cm0gLXJmIH4=", "bell\x07", f"{ESC}[31mred", "\x9b")


class CapturingDriver(HeadlessDriver):
    """Renders like a terminal driver and keeps the bytes instead of writing them."""

    written: list[str] = []

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        CapturingDriver.written.append(data)

    def flush(self) -> None:
        pass


def terminal_output() -> str:
    return "".join(CapturingDriver.written)


def leaks(output: str) -> list[str]:
    return [piece for piece in FORBIDDEN if piece in output]


@pytest.fixture
def capture():
    CapturingDriver.written = []
    yield CapturingDriver
    CapturingDriver.written = []


def poison_store() -> int:
    """A conversation as an import could leave it: escape sequences in the title, the message and the answer."""
    store = Store()
    try:
        conversation = store.create_conversation(f"Imported {TITLE_SEQ}chat")
        turn = store.add_user_turn(conversation, f"stored question {CLEAR_SEQ}{CLIPBOARD_SEQ}", None)
        writer = store.start_variant(turn, strategy="first", backend="fake", model=f"m{TITLE_SEQ}", params={})
        writer.append(f"stored answer {TITLE_SEQ} with bell\x07")
        writer.finish("stop", None, {"total_s": 1.0})
        return conversation
    finally:
        store.close()


async def test_escape_sequences_never_reach_the_terminal(fake_server, fake_backend_settings, capture):
    conversation = poison_store()
    # The answer's sequences are cut across chunks, as a stream delivers them.
    chunks = [HOSTILE[i:i + 7] for i in range(0, len(HOSTILE), 7)]
    fake_server.responder = Script([Reply(chunks=chunks, chunk_delay=0.01)])
    app = make_app(fake_backend_settings, conversation_id=conversation)
    app.driver_class = capture
    async with app.run_test(size=SIZE, headless=False) as pilot:
        await started(pilot)
        screen = app.screen
        await wait_for(pilot, lambda: screen.last_answer() is not None, what="stored conversation shown")
        assert terminal_output(), "the capturing driver saw nothing: the test would prove nothing"
        assert "Imported" in terminal_output() and "stored answer" in terminal_output()
        answer = await send(pilot, "new question")
        await pilot.pause(0.2)
        assert "Hello" in terminal_output() and "end" in terminal_output()
        # the stored text stays exact
        stored = app.store.load_conversation(screen.conversation_id)
        assert stored.turns[-1].variants[-1].text == HOSTILE
        assert stored.title == f"Imported {TITLE_SEQ}chat"
        assert answer.current.text == HOSTILE
        # a notification quoting hostile text, the search snippets, the variants view
        app.notify(f"server said {TITLE_SEQ}", title=f"t{CLEAR_SEQ}")
        await pilot.pause(0.2)
        shown = list(app._notifications)[-1]
        assert (shown.message, shown.title, shown.markup) == ("server said ", "t", False)
        await pilot.press("ctrl+f", *"stored")
        await wait_for(pilot, lambda: "match" in str(screen.sidebar.query_one("#list-label").render()),
                       what="search hits")
        await pilot.press("escape")
        screen.prompt.area.focus()
        await pilot.press("f4")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "HomogenizationScreen"
        await pilot.press("escape")
        # the input's history recalls a stored message: shown without its sequences
        screen.prompt.area.focus()
        await pilot.press("up")
        await pilot.pause(0.2)
        assert ESC not in screen.prompt.area.text
    output = terminal_output()
    assert "stored" in output
    assert leaks(output) == []


async def test_crash_report_shows_no_api_key(fake_server, fake_backend_settings, monkeypatch, capsys):
    key = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("TASKDIV_TEST_KEY", key)
    settings = fake_backend_settings.model_copy(deep=True)
    settings.backends["fake"].api_key_env = "TASKDIV_TEST_KEY"
    fake_server.responder = Script(["ok"])
    app = make_app(settings)

    def crash(headers=None):
        authorization = app.screen.backend._client.headers["Authorization"]  # a local, as in httpx's frames
        raise RuntimeError(f"forced crash while sending {authorization}")

    with pytest.raises(RuntimeError, match="forced crash"):
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            assert key in app.screen.backend._client.headers["Authorization"]
            app.call_later(crash)
            await pilot.pause(0.5)
    report = capsys.readouterr().err
    assert "RuntimeError" in report and "forced crash while sending" in report
    assert key not in report
    assert "[redacted]" in report


# --- pastes and raw bytes from the terminal ------------------------------------------------------

PASTE = "first line\x07 \x1b]0;X\x07\x1b[31mred\r\nsecond\x1b\x1b[A\x00 end"  # BEL, OSC, CSI, CR, lone ESC, NUL


def parse(chunks: list[str], ticks: bool = False) -> list:
    parser = SafeXTermParser()
    out = []
    for chunk in chunks:
        out += list(parser.feed(chunk))
        if ticks:
            time.sleep(0.12)  # past ESCAPE_DELAY: what is held back as a marker's start is let go
            out += list(parser.tick())
    return out


def described(tokens: list) -> list:
    return [("paste", t.text) if isinstance(t, events.Paste) else ("key", t.key) for t in tokens
            if isinstance(t, (events.Paste, events.Key))]


def test_a_paste_stays_one_paste_whatever_it_holds():
    data = f"a{BRACKETED_PASTE_START}{PASTE}{BRACKETED_PASTE_END}b"
    want = [("key", "a"), ("paste", PASTE.replace("\x00", "")), ("key", "b")]
    assert described(parse([data])) == want
    # cut into two reads anywhere, the markers too
    for cut in range(1, len(data)):
        assert described(parse([data[:cut], data[cut:]])) == want, cut
    # one character per read, as a slow terminal delivers it
    assert described(parse(list(data))) == want


def test_keys_around_pastes_still_parse():
    assert described(parse(["x\x1b[Ay"])) == [("key", "x"), ("key", "up"), ("key", "y")]
    # "ESC [" at the end of a read waits for the rest; alone it is keys once ESCAPE_DELAY has passed
    assert described(parse(["\x1b[", "B"])) == [("key", "down")]
    held = parse(["\x1b["], ticks=True)
    assert described(held) and all(kind == "key" for kind, _ in described(held))
    assert described(parse(["\x1b"], ticks=True)) == [("key", "escape")]


class Terminal:
    """The real `taskdiv-chat` command in a pseudo-terminal: bytes in, screen bytes out."""

    def __init__(self) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "taskdiv_chat"], stdin=slave, stdout=slave,
                                     stderr=slave, env={**os.environ, "TERM": "xterm-256color"}, close_fds=True)
        os.close(slave)
        self.master = master
        self.output = b""

    def read_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.output):
                return True
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return predicate(self.output)
                if not chunk:
                    return predicate(self.output)
                self.output += chunk
            elif self.proc.poll() is not None:
                return predicate(self.output)
        return False

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self, wait: float) -> int | None:
        """Wait for the app to end (`wait` s at most) and return its exit status (None: it had to be killed)."""
        try:
            self.read_until(lambda _: self.proc.poll() is not None, wait)
            return self.proc.poll()
        finally:
            self.proc.kill()
            self.proc.wait()
            os.close(self.master)


def draft_of_new_chat() -> str:
    store = Store()
    try:
        return store.load_draft(None)
    finally:
        store.close()


def test_pasted_escapes_and_a_stray_byte_in_a_real_terminal(fake_server):
    fake_server.responder = Script(["should not be asked"])
    write_config(f'default_backend = "fake"\n[backends.fake]\nbase_url = "{fake_server.base_url}"\n'
                 f'model = "test-model"\n')
    terminal = Terminal()
    code = None
    try:
        assert terminal.read_until(lambda out: b"Type a message" in out, 60), terminal.output[-2000:]
        time.sleep(0.5)
        paste = f"{BRACKETED_PASTE_START}{PASTE}{BRACKETED_PASTE_END}".encode()
        terminal.write(paste[:20])  # two reads, cut inside the paste
        time.sleep(0.2)
        terminal.write(paste[20:])
        time.sleep(0.3)
        terminal.write(b"\x9b")  # not UTF-8: once ended the app with UnicodeDecodeError
        time.sleep(1.0)
        assert terminal.proc.poll() is None, "the app ended on a stray byte"
        terminal.write(b"\x11")  # ctrl+q: quit, saving the draft first
        deadline = time.monotonic() + 60
        while not draft_of_new_chat() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        code = terminal.close(wait=30)  # (a model still loading in the background can hold the exit)
    text = terminal.output.decode("utf-8", errors="replace")
    assert code in (0, None), text[-2000:]
    assert "Traceback" not in text and "UnicodeDecodeError" not in text
    assert [r for r in fake_server.requests if "Classify" not in r["messages"][-1]["content"]] == []  # not sent
    draft = draft_of_new_chat()
    assert draft == clean_text(PASTE) + "\ufffd"  # the whole paste, as typed text, then the stray byte shown


# --- rough edges ---------------------------------------------------------------------------------


async def test_a_sent_message_does_not_come_back_in_a_new_chat(fake_server, fake_backend_settings):
    fake_server.responder = Script(["ok"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.focus()
        await pilot.press(*"sent once")
        await pilot.pause(DRAFT_DELAY + 0.3)  # the draft of the new chat is saved meanwhile
        assert app.store.load_draft(None) == "sent once"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.conversation_id is not None and not screen.answering
                       and screen.last_answer() is not None and screen.last_answer().variants, what="answer")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen.conversation_id is None, what="new chat")
        await pilot.pause(DRAFT_DELAY + 0.3)
        assert screen.prompt.area.text == ""
        assert app.store.load_draft(None) == ""


async def test_a_locked_database_is_told_not_a_crash_and_the_typed_text_stays(fake_server, fake_backend_settings):
    fake_server.responder = Script(["ok"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        await send(pilot, "first message")
        conversation = screen.conversation_id
        with held_by_another_instance(app):
            screen.prompt.area.focus()
            await pilot.press(*"typed while locked")
            await pilot.pause(DRAFT_DELAY + 0.3)  # the draft save meets the lock
            screen._delete(conversation)
            await pilot.pause(0.2)
            told = [n.message for n in app._notifications if n.message.startswith("Not saved")]
            assert len(told) >= 2 and all("locked" in m for m in told)
            assert app.return_code is None and screen.prompt.area.text == "typed while locked"
        assert [c.id for c in app.store.list_conversations()] == [conversation]  # the delete did not happen


async def test_text_of_a_stalled_stream_is_shown_before_it_ends(fake_server, fake_backend_settings):
    words = "Some words arrive and then the server goes quiet for a long time"
    fake_server.responder = Script([Reply(words, fault="never-end", fault_after=len(words.split()))])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.load_text("Talk")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.last_answer() is not None and screen.answering, what="answering")
        body = screen.last_answer().body
        await wait_for(pilot, lambda: "long time" in "".join(m.source for m in body.segments), timeout=5,
                       what="the text before the stall on screen")
        assert screen.answering  # the stream has not ended
        assert str(screen.status.query_one("#context").render()).startswith("ctx 0/")  # a new chat
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.answering, what="stopped")
        # the context count takes in the stopped answer too
        await wait_for(pilot, lambda: not str(screen.status.query_one("#context").render()).startswith("ctx 0/"),
                       what="context counted after Esc")


async def test_a_history_surely_over_the_window_shows_as_over_without_counting(fake_server, fake_backend_settings):
    fake_backend_settings.backends["fake"].context_window = 600  # room for the question and the answer's reserve
    fake_server.responder = Script([Reply("word " * 1600)])  # 8,000 characters: over 600 tokens by length alone
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        await send(pilot, "Talk")
        context = screen.status.query_one("#context")
        await wait_for(pilot, lambda: str(context.render()) == "ctx >600/600", what="the context shown as over")
        assert context.has_class("-full")


def crash_while_answering() -> int:
    """A second process writes part of an answer and is killed (kill -9) mid-stream; returns the turn id."""
    store = Store()
    try:
        conversation = store.create_conversation("Killed")
        turn = store.add_user_turn(conversation, "Tell me everything", None)
    finally:
        store.close()
    script = ("import os, signal, time\nfrom taskdiv_chat.store import Store\n"
              f"w = Store().start_variant({turn}, strategy='first', backend='fake', model='m', params={{}})\n"
              "w.append('The first half of an answer')\ntime.sleep(0.6)\nw.append(' and more')\ntime.sleep(0.6)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=60)
    assert proc.returncode == -9
    return conversation


async def test_an_answer_cut_off_by_a_crash_says_so(fake_backend_settings):
    conversation = crash_while_answering()
    app = make_app(fake_backend_settings, conversation_id=conversation)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = app.screen.last_answer()
        assert answer.current.text.startswith("The first half of an answer")
        assert app.store.load_conversation(conversation).turns[0].variants[0].finish_reason == "crash"
        assert "cut off (the app stopped" in str(answer.query_one("#cutoff").render())


# What terminals send for the newline keys (alt+enter: xterm, VTE, iTerm2 with Option as Esc+, tmux;
# CSI u: terminals with the kitty keyboard protocol), and the key the app must see.
NEWLINE_KEYS = {"\n": "ctrl+j", "\x1b\r": "alt+enter", "\x1b[13;3u": "alt+enter", "\x1b[13;2u": "shift+enter"}


def test_newline_keys_arrive_as_themselves():
    for data, key in NEWLINE_KEYS.items():
        assert described(parse([data], ticks=True)) == [("key", key)], repr(data)
    # keys Textual names itself keep their meaning
    assert described(parse(["\r"], ticks=True)) == [("key", "enter")]
    assert described(parse(["\x1bj"], ticks=True)) == [("key", "alt+j")]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_newline_keys_under_tmux(fake_server, tmp_path):
    """The real app inside tmux: alt+enter and ctrl+j insert a newline; only Enter sends."""
    fake_server.responder = Script(["ok"])
    write_config(f'default_backend = "fake"\n[backends.fake]\nbase_url = "{fake_server.base_url}"\n'
                 f'model = "test-model"\n')
    socket = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    subprocess.run(tmux + ["new-session", "-d", "-x", "100", "-y", "30", sys.executable, "-m", "taskdiv_chat"],
                   env=env, check=True, timeout=30)
    try:
        def screen() -> str:
            return subprocess.run(tmux + ["capture-pane", "-p"], capture_output=True, text=True, timeout=10).stdout

        deadline = time.monotonic() + 90
        while "Type a message" not in screen() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(0.5)
        for keys in (["o", "n", "e"], ["M-Enter"], ["t", "w", "o"], ["C-j"], ["t", "h", "r", "e", "e"]):
            subprocess.run(tmux + ["send-keys", *keys], check=True, timeout=10)
            time.sleep(0.3)
        time.sleep(0.5)
        assert [r for r in fake_server.requests if "Classify" not in r["messages"][-1]["content"]] == []
        subprocess.run(tmux + ["send-keys", "C-q"], check=True, timeout=10)  # quit: the draft is saved first
        deadline = time.monotonic() + 60
        while not draft_of_new_chat() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
    assert draft_of_new_chat() == "one\ntwo\nthree"


async def test_a_huge_answer_is_shown_cut_and_kept_whole(fake_server, fake_backend_settings):
    paragraph = "A line of a very long answer that keeps going.\n\n"
    text = paragraph * (SHOW_CHARS // len(paragraph) + 400)  # ~20,000 characters past the limit
    fake_server.responder = Script([Reply(chunks=[text[i:i + 4096] for i in range(0, len(text), 4096)])])
    settings = fake_backend_settings.model_copy(deep=True)
    settings.backends["fake"].context_window = 1_000_000
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Write a lot")
        assert answer.current.text == text
        assert app.store.load_conversation(app.screen.conversation_id).turns[0].variants[0].text == text
        source = "".join(m.source for m in answer.body.segments)
        assert len(source) < SHOW_CHARS + 200
        assert f"{len(text) - SHOW_CHARS:,} more characters not shown here" in source
        await pilot.press("alt+c")
        assert app.clipboard == text  # copied whole


def stored_measured_turn() -> int:
    """A conversation whose one turn has two answers and a saved diversity report; returns its id."""
    from taskdiv_chat.diversity.report import DiversityReport

    report = DiversityReport(category="G", wants="different", n=2, groups=[[0], [1]], unique=2, newest_is_new=True,
                             newest_duplicates=None, pairwise=[[True, False], [False, True]],
                             similarity=[[1.0, 0.3], [0.3, 1.0]], generic={}, answers_agree=None,
                             final_answers=[None, None], status="good", reason="two different stories",
                             badge_text="2/2 unique")
    store = Store()
    try:
        conversation = store.create_conversation("Stories")
        turn = store.add_user_turn(conversation, "A story please", None)
        for text in ("A dragon story.", "A robot story."):
            writer = store.start_variant(turn, strategy="anchored-icr", backend="fake", model="m", params={})
            writer.append(text)
            writer.finish("stop", None, {"total_s": 1.0})
        store.save_metrics(writer.variant_id, report.to_dict())
        return conversation
    finally:
        store.close()


async def test_f4_inside_the_diversity_detail_opens_the_variants(fake_backend_settings):
    conversation = stored_measured_turn()
    app = make_app(fake_backend_settings, conversation_id=conversation)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: app.screen.last_answer() is not None, what="conversation")
        await pilot.press("f3")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DetailScreen", what="F3")
        await pilot.press("f4")  # the hint at the bottom of F3 says so
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HomogenizationScreen", what="F4 from F3")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ChatScreen", what="back to the chat")


async def test_palette_strategies_say_what_each_does(fake_backend_settings):
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        helps = [c.help for c in app.get_system_commands(app.screen) if c.title.startswith("Strategy: ")]
        assert len(helps) == 5 and len(set(helps)) == 5


async def test_brainstorm_footer_does_not_show_the_previous_variant(fake_server, fake_backend_settings):
    settings = fake_backend_settings.model_copy(deep=True)
    settings.regenerate.brainstorm_n = 2
    slow = Reply("Response 1: One idea.\n\nResponse 2: Another idea.", chunk_delay=0.1)
    fake_server.responder = Script(["A first answer.", slow], letter="G")
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Ideas please")
        app.set_strategy("anchored-system")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.screen.answering, timeout=60, what="brainstorm running")  # after the category
        meta = answer.meta_text
        assert "brainstorming 2 variants" in meta and "tok" not in meta
        await wait_for(pilot, lambda: not app.screen.answering and len(answer.variants) == 3, timeout=30,
                       what="brainstorm done")
        assert "brainstorming" not in answer.meta_text


def test_search_snippet_brings_the_match_into_view():
    from taskdiv_chat.tui.widgets.sidebar import LEAD_CHARS, snippet_parts

    lead = "a long lead-in that says nothing for quite a while before the word "
    parts = snippet_parts([(lead, False), ("penguin", True), (" and after", False)])
    assert parts[1] == ("penguin", True) and parts[0][0].startswith("…")
    assert len(parts[0][0]) <= LEAD_CHARS + 1 and lead.endswith(parts[0][0][1:])
    assert snippet_parts([("short ", False), ("penguin", True)]) == [("short ", False), ("penguin", True)]
    assert snippet_parts([(f"x{ESC}]0;T\x07 ", False), ("hit", True)]) == [("x ", False), ("hit", True)]


async def test_a_history_locked_during_a_turn_is_told_and_catches_up_when_it_is_free(fake_server,
                                                                                     fake_backend_settings):
    fake_server.responder = Script(["first answer", "answered while locked"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        await send(pilot, "first message")
        with held_by_another_instance(app):
            answer = await send(pilot, "sent while locked")
            assert answer.current.text == "answered while locked"
            told = [n.message for n in app._notifications if "not saved in the history" in n.message]
            assert len(told) == 1 and "locked" in told[0] and "retrying" in told[0]
        await wait_for(pilot, lambda: screen.service.saving, what="the kept writes")
        await pilot.pause()
        assert [n.message for n in app._notifications if n.message.startswith("Saved in the history again")]
        conv = app.store.load_conversation(screen.conversation_id)
        assert [(t.user.text, t.active.text) for t in conv.turns] == [("first message", "first answer"),
                                                                     ("sent while locked", "answered while locked")]


async def test_a_retry_wait_is_told_to_the_user(fake_server, fake_backend_settings):
    fake_server.responder = Script([Reply(fault="429", retry_after=1), "Answer after the wait."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Hello")
        assert answer.current.text == "Answer after the wait."
        told = [n for n in app._notifications if n.title == "Waiting to retry"]
        assert told and "Retry-After" in told[-1].message


async def test_answer_deadline_and_size_cap_are_shown_with_the_partial_text(fake_server, fake_backend_settings):
    settings = fake_backend_settings.model_copy(deep=True)
    settings.backends["fake"].max_answer_chars = 100
    settings.backends["fake"].answer_timeout = 2
    long = " ".join(f"word{i}" for i in range(100))
    fake_server.responder = Script([long, Reply("Slow start then", fault="never-end", fault_after=3)])
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        capped = await send(pilot, "Talk a lot")
        assert capped.current.text and long.startswith(capped.current.text) and len(capped.current.text) <= 100
        assert "max_answer_chars" in str(capped.query_one("#error-text").render())
        stalled = await send(pilot, "Talk slowly")
        assert stalled.current.text.startswith("Slow start")
        assert "no complete answer within 2 s (answer_timeout" in str(stalled.query_one("#error-text").render())


async def test_a_failing_history_is_one_notice(fake_server, fake_backend_settings):
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        service = app.screen.service
        for _ in range(2):  # the service reports a failing store once, however often it fails
            service.store_failed(sqlite3.OperationalError("database is locked"))
        await pilot.pause()
        told = [n for n in app._notifications if "not saved in the history" in n.message]
        assert len(told) == 1 and "database is locked" in told[0].message


async def test_an_answer_saved_late_after_a_lock_can_be_chosen_and_the_choice_is_kept(fake_server,
                                                                                   fake_backend_settings):
    fake_server.responder = Script(["first answer", "regenerated while locked"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        answer = await send(pilot, "first message")
        with held_by_another_instance(app):
            await pilot.press("ctrl+r")
            await settled(pilot)
            assert [v.text for v in answer.variants] == ["first answer", "regenerated while locked"]
        await wait_for(pilot, lambda: screen.service.saving, what="the kept writes")
        # Back to the first answer, then forward to the one written late: that choice is what the store keeps.
        await pilot.press("alt+left")
        await settled(pilot)
        await pilot.press("alt+right")
        await settled(pilot)
        assert answer.current.text == "regenerated while locked"
        conv = app.store.load_conversation(screen.conversation_id)
        assert [v.text for v in conv.turns[0].variants] == ["first answer", "regenerated while locked"]
        assert conv.turns[0].active.text == "regenerated while locked"
