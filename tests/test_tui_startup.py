"""The deferred start of the chat UI (`taskdiv-chat` with no subcommand): first frame, then the config.

Pilot tests drive TaskdivApp(None, config_path=...) the way run_app does, against the
loopback server; `gate` holds the config load (the real one) so keys can be typed while
the boot screen is up. One test runs the real command in a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from pathlib import Path

import pytest

from taskdiv_chat.cli import chat_ui_args
from taskdiv_chat.store import Store
from taskdiv_chat.tui.app import TaskdivApp
from taskdiv_chat.tui.boot import BootScreen
from taskdiv_chat.tui.state import save_state, state_path
from taskdiv_chat.tui.widgets.messages import AssistantMessage, UserMessage
from taskdiv_chat.tui.widgets.prompt import PromptArea
from tests.support import python_output, write_config
from tests.support.fake_server import Reply
from tests.support.pilot import SIZE, wait_for
from tests.support.terminal import start_in_pty

BROKEN = '[ui]\ntheme = "x"\ncolour = "red"\n'
BROKEN_MESSAGE = ":3: field 'ui.colour': unknown field"


def fake_config(fake_server, extra: str = "") -> Path:
    return write_config(f'default_backend = "fake"\n{extra}\n[backends.fake]\nbase_url = "{fake_server.base_url}"\n'
                        f'model = "test-model"\nmax_retries = 2\nread_timeout = 5\nconnect_timeout = 2\n'
                        'capable = true\n')  # trusted: no capability self-check


def responder(answer: str):
    """Classification -> G, anything else -> `answer`; chat requests are kept in .chats."""
    def reply(body: dict):
        last = body["messages"][-1]["content"]
        if last.startswith("Classify the user prompt"):
            return Reply("G")
        reply.chats.append(last)
        return Reply(answer)
    reply.chats = []
    return reply


@pytest.fixture
def gate(monkeypatch):
    """Holds the (real) config load until .set(): the boot screen stays up meanwhile."""
    from taskdiv_chat import config

    release = threading.Event()
    real = config.load_for_backend

    def held(*args):
        release.wait(20)
        return real(*args)

    monkeypatch.setattr(config, "load_for_backend", held)
    return release


async def chat_ready(pilot):
    """The chat screen, once it has its backend, store and conversation."""
    app = pilot.app
    await wait_for(pilot, lambda: not isinstance(app.screen, BootScreen) and app.store is not None
                   and app.screen.backend is not None and app.screen.query("#empty, UserMessage"), what="chat screen")
    await pilot.pause()
    return app.screen


def deferred_app(path: Path) -> TaskdivApp:
    return TaskdivApp(None, config_path=str(path), warm_up=False)


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("argv, ui", [
    ([], True), (["--config", "c.toml", "--backend", "b"], True), (["--config=c.toml"], True),
    (["ask", "hi"], False), (["-h"], False), (["--version"], False), (["--config"], False), (["store", "list"], False),
])
def test_only_the_bare_command_takes_the_fast_path(argv, ui):
    args = chat_ui_args(argv)
    assert (args is not None) == ui
    if argv[:2] == ["--config", "c.toml"]:
        assert (args.config, args.backend) == ("c.toml", "b")


def test_the_ui_start_imports_neither_the_config_nor_the_commands():
    code = ("import sys, taskdiv_chat.cli as c, taskdiv_chat.tui.app, taskdiv_chat.tui.boot\n"
            "assert c.chat_ui_args([]) is not None\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'taskdiv_chat.config', "
            "'taskdiv_chat.commands'))))")
    assert python_output(code) == "[]"


def test_choosing_the_terminal_driver_does_not_import_importlib_metadata():
    """importlib.metadata (email, zipfile, csv...) took ~40 ms before the first frame."""
    code = ("import sys, taskdiv_chat.tui.app, taskdiv_chat.tui.boot\n"
            "from textual.drivers.linux_driver import LinuxDriver\n"
            "from taskdiv_chat.tui import compat\n"
            "assert compat.safe_driver(LinuxDriver).__name__ == 'SafeLinuxDriver'\n"
            "print('importlib.metadata' in sys.modules)")
    assert python_output(code) == "False"


def test_broken_config_in_a_terminal_exits_2_with_one_line():
    path = write_config(BROKEN)
    proc, master = start_in_pty(30, 100)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=10) == 2
    finally:
        proc.kill()
        os.close(master)
    text = output.decode("utf-8", errors="replace")
    assert f"taskdiv-chat: config error: {path}{BROKEN_MESSAGE}" in text
    assert "Traceback" not in text


# --- the app ------------------------------------------------------------------------------------


async def test_broken_config_ends_the_app_with_return_code_2():
    path = write_config(BROKEN)
    app = deferred_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 2
    assert app.config_error == f"{path}{BROKEN_MESSAGE}"


async def test_first_frame_comes_before_the_config_then_the_chat_works(fake_server, gate):
    fake_server.responder = responder("Hello back")
    app = deferred_app(fake_config(fake_server))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        boot = app.screen
        assert isinstance(boot, BootScreen) and app.settings is None
        assert app.screen.query_one("Header")
        await wait_for(pilot, lambda: boot.query("Footer"), what="the boot screen's footer, after the first frame")
        gate.set()
        chat = await chat_ready(pilot)
        assert app.backend_name == "fake"
        # a mode switch, not a screen stacked over the boot screen: the boot screen is gone
        assert app.current_mode == "chat" and app.screen_stack == [chat]
        await wait_for(pilot, lambda: not boot.is_attached, what="boot screen removed")
        chat.prompt.area.load_text("Say hi")
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.query(AssistantMessage) and chat.last_answer().variants
                       and not chat.answering, what="answer")
        assert chat.last_answer().current.text == "Hello back"
        assert fake_server.responder.chats == ["Say hi"]


async def test_keys_typed_before_the_config_loads_are_kept_with_the_draft(fake_server, gate):
    fake_server.responder = responder("ok")
    path = fake_config(fake_server)
    store = Store()
    conv = store.create_conversation("earlier")
    store.save_draft(conv, "saved draft")
    store.close()
    save_state(last_conversation=conv)
    app = deferred_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"typed", "space", *"early")
        assert app.screen.query_one(PromptArea).text == "typed early"
        gate.set()
        chat = await chat_ready(pilot)
        await wait_for(pilot, lambda: chat.conversation_id == conv, what="last conversation")
        assert chat.prompt.area.text == "saved draft\ntyped early"
        await pilot.press("!")
        assert chat.prompt.area.text.endswith("early!")  # the cursor is at the end, typing goes on
        assert fake_server.responder.chats == []


async def test_enter_pressed_before_the_config_loads_sends_once_ready(fake_server, gate):
    fake_server.responder = responder("Answer")
    app = deferred_app(fake_config(fake_server))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(*"quick", "enter")
        assert fake_server.responder.chats == []
        gate.set()
        chat = await chat_ready(pilot)
        await wait_for(pilot, lambda: chat.query(UserMessage) and not chat.answering
                       and fake_server.responder.chats, what="sent message")
        assert fake_server.responder.chats == ["quick"]
        assert chat.prompt.area.text == ""


async def test_theme_of_the_last_run_paints_the_first_frame(fake_server):
    fake_server.responder = responder("ok")
    path = fake_config(fake_server, '[ui]\ntheme = "paper"')
    assert TaskdivApp(None, config_path=str(path)).theme == "textual-dark"  # nothing remembered yet
    app = deferred_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await chat_ready(pilot)
        assert app.theme == "paper"
    assert json.loads(state_path().read_text())["theme_fields"]["name"] == "paper"
    # the next start paints in it before reading the config
    assert TaskdivApp(None, config_path=str(path)).theme == "paper"
    # a config changed since: its theme wins once loaded
    path = fake_config(fake_server, '[ui]\ntheme = "midnight"')
    app = deferred_app(path)
    assert app.theme == "paper"
    async with app.run_test(size=SIZE) as pilot:
        await chat_ready(pilot)
        assert app.theme == "midnight"


def test_state_file_is_in_the_config_data_dir(monkeypatch, tmp_path):
    from taskdiv_chat.config import data_dir

    assert state_path() == data_dir() / "ui-state.json"
    monkeypatch.delenv("TASKDIV_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert state_path() == data_dir() / "ui-state.json"
