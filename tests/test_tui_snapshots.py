"""Snapshots of the main screens at a fixed size (100x30), cursor blink off.

Regenerate after an intended UI change with:
    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from tests.support.pilot import SIZE, Script, make_app, send, started, wait_for

ANSWER = ("A lighthouse keeper finds a **message in a bottle**.\n\n"
          "- setting: a storm-battered island\n- tone: quiet, hopeful\n\n"
          "```python\nprint('the light turns')\n```\n")


async def _classified(pilot, letter: str) -> None:
    """Wait for the model's classification (the local classifier may paint the chip first)."""
    app = pilot.app

    def done() -> bool:
        turn = app.store.load_conversation(app.screen.conversation_id).turns[-1]
        return (turn.user.category or {}).get("method") == "llm" and app.screen.chat.query(
            "UserMessage").last().chip.letter == letter

    await wait_for(pilot, done, timeout=60, what="classification")


def _freeze_times(pilot) -> None:
    """Answer times are wall-clock: show a fixed one so snapshots compare."""
    for answer in pilot.app.screen_stack[0].chat.query("AssistantMessage"):
        for variant in answer.variants:
            variant.seconds = 1.0
        answer.refresh_footer()


async def _ready(pilot) -> None:
    await started(pilot)
    pilot.app.screen.prompt.area.cursor_blink = False


def test_empty_chat(snap_compare, fake_server, fake_backend_settings):
    fake_server.responder = Script(["unused"])
    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE, run_before=_ready)


def test_conversation_with_answer(snap_compare, fake_server, fake_backend_settings):
    fake_server.responder = Script([ANSWER], letter="G")

    async def run_before(pilot) -> None:
        await _ready(pilot)
        await send(pilot, "Write a short story about a lighthouse")
        await _classified(pilot, "G")
        _freeze_times(pilot)
        await pilot.pause(0.2)

    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, fake_server, fake_backend_settings):
    fake_server.responder = Script(["unused"])

    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)

    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE, run_before=run_before)


def test_category_picker(snap_compare, fake_server, fake_backend_settings):
    fake_server.responder = Script(["Paris."], letter="A")

    async def run_before(pilot) -> None:
        await _ready(pilot)
        await send(pilot, "What is the capital of France?")
        await _classified(pilot, "A")
        _freeze_times(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause(0.2)

    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE, run_before=run_before)


STORIES = ["A dragon guards a castle in the mountains.", "A robot wakes up alone on Mars.",
           "A detective in rainy Paris hunts a painter.", "A dragon sleeps in a castle until a knight comes."]


def _regenerated_three_times(fake_server, press: str | None):
    fake_server.responder = Script(STORIES, letter="G", same=lambda a, b: "dragon" in a and "dragon" in b)

    async def run_before(pilot) -> None:
        await _ready(pilot)
        answer = await send(pilot, "Write a short story")
        await _classified(pilot, "G")
        for n in (2, 3, 4):
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: len(answer.variants) == n and not pilot.app.screen.answering, what="regen")
            await wait_for(pilot, lambda: answer.badge.has_class("-good") or answer.badge.has_class("-warn")
                           or answer.badge.has_class("-bad"), timeout=60, what="badge")
        _freeze_times(pilot)
        if press:
            await pilot.press(press)
        await pilot.pause(0.3)

    return run_before


def test_badge_after_three_regenerations(snap_compare, fake_server, fake_backend_settings):
    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE,
                        run_before=_regenerated_three_times(fake_server, None))


def test_badge_detail(snap_compare, fake_server, fake_backend_settings):
    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE,
                        run_before=_regenerated_three_times(fake_server, "f3"))


def test_homogenization_view(snap_compare, fake_server, fake_backend_settings):
    assert snap_compare(make_app(fake_backend_settings), terminal_size=SIZE,
                        run_before=_regenerated_three_times(fake_server, "f4"))
