"""End to end on the real embedded model (SmolLM2-135M via llama.cpp), the local classifier and the local judge."""

from __future__ import annotations

import pytest

from taskdiv_chat.config import Settings
from taskdiv_chat.tui.app import TaskdivApp
from tests.support.pilot import send, started, wait_for

pytestmark = pytest.mark.slow


async def test_embedded_model_answers_regenerates_and_measures():
    settings = Settings()  # the default: the embedded backend, no server at all
    settings.backends["local"].max_tokens = 48  # keep the test short; the app's default is 512
    app = TaskdivApp(settings, warm_up=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        screen = app.screen
        assert "local · SmolLM2-135M (demo quality)" in str(screen.status.query_one("#backend").render())
        assert "config init" in str(screen.status.query_one("#hint").render())
        answer = await send(pilot, "Write a two-line poem about the sea.")
        assert answer.current.text.strip() and not answer.current.error
        assert "local · SmolLM2-135M (demo quality)" in answer.meta_text
        user = screen.chat.query("UserMessage").last()
        await wait_for(pilot, lambda: user.chip.letter is not None, timeout=120, what="local classification")
        category = app.store.load_conversation(screen.conversation_id).turns[0].user.category
        assert category["method"] == "local" and category["letter"] == user.chip.letter
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(answer.variants) == 2 and not screen.answering, timeout=120,
                       what="regenerated answer")
        await wait_for(pilot, lambda: any(answer.badge.has_class(c) for c in ("-good", "-warn", "-bad")),
                       timeout=120, what="badge")
        metrics = app.store.load_conversation(screen.conversation_id).turns[0].variants[-1].metrics
        assert metrics["n"] == 2 and metrics["judge"].startswith("local")
