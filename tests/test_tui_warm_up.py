"""The warm-up after the first paint: it loads only what the first turn needs, and quitting in the
middle of it (issue 10, item 13) ends the app at once and cleanly.

The quit tests hold the embedding model's load (the real one, released at the end) so the quit
lands in the middle of the warm-up every time; the pty test runs the real command.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from taskdiv_chat import embeddings
from taskdiv_chat.store import Store
from taskdiv_chat.tui.app import TaskdivApp
from taskdiv_chat.tui.boot import BootScreen
from taskdiv_chat.tui.chat import ChatScreen
from taskdiv_chat.tui.state import save_state
from tests.test_tui_startup import fake_config, responder
from tests.support.pilot import SIZE, wait_for
from tests.support.terminal import start_in_pty

QUIT_WITHIN = 5.0  # seconds from ctrl+q to the process gone (it was 9-15 s, waiting for the models)


WARM_UP_SCRIPT = """
import asyncio, sys
from taskdiv_chat.config import BackendConfig, Settings
from taskdiv_chat.tui.app import TaskdivApp

async def main():
    settings = Settings(default_backend="fake", backends={"fake": BackendConfig(base_url=sys.argv[1], model="m")})
    app = TaskdivApp(settings)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(1200):
            await pilot.pause(0.05)
            screen = app.screen
            if screen.query("#activity") and screen.backend is not None and app.store is not None \\
                    and "warming" not in str(screen.query_one("#activity").render()):
                break
        print(screen.query_one("#activity").render(), "|", type(screen.backend).__name__, "|",
              sorted(m for m in ("torch", "sentence_transformers", "sklearn", "scipy", "llama_cpp") if m in sys.modules),
              "|", "tokenizers" in sys.modules)

asyncio.run(main())
"""


@pytest.mark.slow
def test_warm_up_with_a_server_backend_loads_neither_torch_nor_llama_cpp(fake_server):
    out = subprocess.run([sys.executable, "-c", WARM_UP_SCRIPT, fake_server.base_url], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # warm (the status no longer says "warming up"), with the numpy embedding model loaded and nothing heavier
    assert out.stdout.strip() == "| OpenAIBackend | [] | True"


@pytest.fixture
def held_models(monkeypatch):
    """The embedding model's load waits until .release.set(); .entered is set once it is waiting."""
    real = embeddings.get_model
    gate = type("Gate", (), {"release": threading.Event(), "entered": threading.Event()})()

    def held():
        gate.entered.set()
        gate.release.wait(30)
        return real()

    monkeypatch.setattr(embeddings, "get_model", held)
    # A fresh process-wide classifier, so this app's warm-up loads through `held` even after other tests
    from taskdiv_chat.classify import local

    monkeypatch.setattr(local, "_shared", None)
    yield gate
    gate.release.set()


def stored_conversation(turns: int) -> int:
    """A conversation with `turns` answered turns, opened at start as the last one used."""
    store = Store()
    conv = store.create_conversation("long one")
    parent = None
    for i in range(turns):
        turn = store.add_user_turn(conv, f"question {i}", parent, category={"letter": "B"})
        with store.start_variant(turn, strategy=None, backend="fake", model="test-model", params=None) as writer:
            writer.append(f"answer {i} with `code` and **bold**\n\n- a\n- b")
            writer.finish("stop")
        parent = writer.variant_id
    store.close()
    save_state(last_conversation=conv)
    return conv


async def test_quit_during_warm_up_does_not_wait_for_the_models(fake_server, held_models):
    fake_server.responder = responder("ok")
    app = TaskdivApp(None, config_path=str(fake_config(fake_server)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: held_models.entered.is_set() and isinstance(app.screen, ChatScreen)
                       and "warming up" in "".join(str(w.render()) for w in app.screen.query("#activity")),
                       what="warm-up under way, shown in the status bar")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None, timeout=QUIT_WITHIN, what="exit")
    assert app.return_code == 0
    assert not held_models.release.is_set()
    # What app.run() does last (asyncio.run): join the default executor's threads. Nothing of the
    # warm-up may sit there, or the terminal stays blank until the models have loaded.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), QUIT_WITHIN)


@pytest.mark.parametrize("delay", [None, 0.0, 0.05, 0.2, 0.5])
async def test_quit_while_a_long_conversation_opens_raises_nothing(fake_server, held_models, delay):
    """delay None: quit on the boot screen, while the config loads; else that long after the chat screen came."""
    fake_server.responder = responder("ok")
    stored_conversation(40)
    app = TaskdivApp(None, config_path=str(fake_config(fake_server)))
    async with app.run_test(size=SIZE) as pilot:
        if delay is None:
            await wait_for(pilot, lambda: isinstance(app.screen, BootScreen), what="boot screen")
        else:
            await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="chat screen")
            await asyncio.sleep(delay)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None, timeout=QUIT_WITHIN, what="exit")
    # run_test re-raises an exception of the app (such as NoMatches from a widget torn down mid-mount)
    assert app.return_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("after_paint", [0.0, 0.5, 1.0])
def test_ctrl_q_right_after_the_first_paint_ends_the_real_command_at_once(fake_server, after_paint):
    fake_server.responder = responder("ok")
    fake_config(fake_server)
    stored_conversation(20)
    proc, master = start_in_pty(40, 120)
    output = b""

    def read(until: float) -> None:
        nonlocal output
        while time.monotonic() < until and proc.poll() is None:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    output += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    return

    try:
        deadline = time.monotonic() + 60
        while b"taskdiv-chat" not in output and time.monotonic() < deadline and proc.poll() is None:
            read(time.monotonic() + 0.05)
        assert b"taskdiv-chat" in output, "no first paint"
        read(time.monotonic() + after_paint)
        os.write(master, b"\x11")  # ctrl+q
        quit_at = time.monotonic()
        read(quit_at + QUIT_WITHIN)
        try:  # the terminal may be closed before the process has ended
            code = proc.wait(timeout=max(0.0, quit_at + QUIT_WITHIN - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - quit_at
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = output.decode("utf-8", errors="replace")
    assert code == 0, f"still running {took:.1f} s after ctrl+q" if code is None else text[-2000:]
    assert "Traceback" not in text and "NoMatches" not in text
