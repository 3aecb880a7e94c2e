"""Send to all: one message to three loopback models in the chat UI, side by side, judged across models."""

from __future__ import annotations

import contextlib

import pytest

from taskdiv_chat.config import BackendConfig
from taskdiv_chat.tui.widgets.compare import ComparePane, CompareView
from tests.support.fake_server import Reply
from tests.support.pilot import SIZE, Script, held_by_another_instance, make_app, settled, started, wait_for
from tests.test_compare import model_servers

PARIS = "Paris. France has had its capital there since the Middle Ages, with the government seated in the city."
PARIS_TOO = "Paris, without any doubt: the national assembly and the president sit in that city."
LYON = "Lyon. Many travellers mistake this silk town on the Rhone for the seat of power, so here it is."
QUESTION = "What is the capital of France?"


def first_word_same(a: str, b: str) -> bool:
    return a.split()[0].strip(".,:").lower() == b.split()[0].strip(".,:").lower()


@contextlib.contextmanager
def compare_app(fake_server, settings, *replies: Reply):
    fake_server.responder = Script(["unused"], letter="A", same=first_word_same)
    settings.classify.method = "llm"
    settings.judge.method = "llm"
    with model_servers(*replies) as servers:
        names = ["alpha", "beta", "gamma"][:len(servers)]
        for i, (name, server) in enumerate(zip(names, servers)):
            settings.backends[name] = BackendConfig(base_url=server.base_url, model=f"model-{i}", max_retries=0,
                                                    read_timeout=5, connect_timeout=2)
        settings.compare.backends = names
        yield make_app(settings)


async def send_all(pilot, text: str) -> CompareView:
    screen = pilot.app.screen
    screen.prompt.area.focus()
    screen.prompt.area.load_text(text)
    await pilot.press("f8")
    await wait_for(pilot, lambda: screen.chat.query(CompareView), what="the comparison")
    return screen.chat.query_one(CompareView)


async def test_send_to_all_streams_side_by_side_groups_across_models_and_keeps_the_failure_in_place(
        fake_server, fake_backend_settings):
    with compare_app(fake_server, fake_backend_settings, Reply(PARIS, chunk_delay=0.01),
                     Reply(PARIS_TOO, chunk_delay=0.01),
                     Reply("Lyon is the one people name", fault="disconnect", fault_after=3)) as app:
        async with app.run_test(size=(120, 40)) as pilot:
            await started(pilot)
            view = await send_all(pilot, QUESTION)
            await settled(pilot)
            await wait_for(pilot, lambda: "functionally distinct" in str(view.badge.render()), what="the badge")
            panes = {p.index: p for p in view.query(ComparePane)}
            assert [str(panes[i].query_one(".model").render()) for i in range(3)] == [
                "alpha (model-0)", "beta (model-1)", "gamma (model-2)"]
            assert panes[0].text == PARIS and panes[1].text == PARIS_TOO
            assert panes[2].has_class("-failed") and panes[2].text == "Lyon is the"
            assert "✗" in str(panes[2].query_one(".state").render())
            assert str(view.badge.render()).strip() == "2 models · 1 functionally distinct"
            assert view.badge.has_class("-good") and not view.has_class("-stacked")
            assert panes[0].region.y == panes[1].region.y  # side by side
            # stored: each answer a variant of the turn, with its backend and model
            turn = app.store.load_conversation(app.screen.conversation_id).turns[0]
            assert sorted((v.backend, v.model) for v in turn.variants) == [
                ("alpha", "model-0"), ("beta", "model-1"), ("gamma", "model-2")]
            # F3: the groups with the model names
            await pilot.press("f3")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "DetailScreen", what="the detail")
            shown = " ".join(str(s.render()) for s in app.screen.query("Static"))
            assert "Across models: 2 models · 1 functionally distinct" in shown
            groups = [str(s.render()) for s in app.screen.query("Static") if str(s.render()).startswith(" 1 ")]
            assert any(sorted(g[3:].strip().split(", ")) == ["alpha (model-0)", "beta (model-1)"] for g in groups)
            await pilot.press("escape")
            # continuing from one model's answer branches from it
            panes[1].focus()
            await pilot.press("enter")
            await pilot.pause()
            turn = app.store.load_conversation(app.screen.conversation_id).turns[0]
            assert turn.active.backend == "beta" and panes[1].has_class("-chosen")


async def test_models_that_disagree_on_a_fact_warn_and_a_narrow_terminal_stacks_them(
        fake_server, fake_backend_settings):
    with compare_app(fake_server, fake_backend_settings, Reply(PARIS), Reply(LYON), Reply(PARIS_TOO)) as app:
        async with app.run_test(size=(70, 60)) as pilot:
            await started(pilot)
            view = await send_all(pilot, QUESTION)
            await settled(pilot)
            await wait_for(pilot, lambda: "functionally distinct" in str(view.badge.render()), what="the badge")
            assert str(view.badge.render()).strip() == "3 models · 2 functionally distinct"
            assert view.badge.has_class("-warn")
            panes = sorted(view.query(ComparePane), key=lambda p: p.index)
            assert view.has_class("-stacked") and panes[0].region.y < panes[1].region.y < panes[2].region.y
            # F4: the models' overlap across the history, per category
            await pilot.press("f4")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "HomogenizationScreen", what="the view")
            table = app.screen.query_one("#overlap")
            assert [str(c) for c in table.get_row_at(0)][1:] == ["1", "3", "1", "33%"]
            assert str(table.get_row_at(0)[0]).startswith("A ")


async def test_escape_stops_every_stream_and_keeps_what_arrived(fake_server, fake_backend_settings):
    slow = [Reply("one two three four five six seven eight nine ten", chunk_delay=0.3) for _ in range(3)]
    with compare_app(fake_server, fake_backend_settings, *slow) as app:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            view = await send_all(pilot, "Count to ten")
            await wait_for(pilot, lambda: len(view.panes) == 3 and all(p.parts for p in view.panes),
                           what="three streams")
            await pilot.press("escape")
            await settled(pilot)
            assert not app.screen.answering
            assert all("stopped" in str(p.query_one(".state").render()) for p in view.panes)
            turn = app.store.load_conversation(app.screen.conversation_id).turns[0]
            assert len(turn.variants) == 3 and {v.finish_reason for v in turn.variants} == {"cancelled"}
            assert all(v.text and len(v.text.split()) < 10 for v in turn.variants)


async def test_send_to_all_without_compare_backends_says_how_to_set_them(fake_server, fake_backend_settings):
    fake_server.responder = Script(["unused"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.screen.prompt.area.load_text("hello")
        await pilot.press("f8")
        await pilot.pause()
        assert any("[compare] backends" in n.message for n in app._notifications)
        assert app.screen.prompt.full_text == "hello" and not app.screen.chat.query(CompareView)


def test_snapshot_three_models_side_by_side(snap_compare, fake_server, fake_backend_settings):
    with compare_app(fake_server, fake_backend_settings, Reply(PARIS), Reply(LYON), Reply(PARIS_TOO)) as app:
        async def run_before(pilot) -> None:
            await started(pilot)
            pilot.app.screen.prompt.area.cursor_blink = False
            view = await send_all(pilot, QUESTION)
            await settled(pilot)
            await wait_for(pilot, lambda: "functionally distinct" in str(view.badge.render()), what="the badge")
            await wait_for(pilot, lambda: pilot.app.screen.chat.query("UserMessage").last().chip.letter == "A",
                           what="the category chip")
            await pilot.pause(0.2)

        assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


async def test_answers_compared_while_the_history_is_locked_are_told_and_can_be_chosen_once_saved(
        fake_server, fake_backend_settings):
    with compare_app(fake_server, fake_backend_settings, Reply(PARIS), Reply(LYON)) as app:
        async with app.run_test(size=(120, 40)) as pilot:
            await started(pilot)
            screen = app.screen
            with held_by_another_instance(app):
                view = await send_all(pilot, QUESTION)
                await settled(pilot)
                panes = sorted(view.query(ComparePane), key=lambda p: p.index)
                assert [p.text for p in panes] == [PARIS, LYON]
                assert not any(p.has_class("-failed") for p in panes)  # finished, not "stopped"
                assert str(view.badge.render()).strip() == "not judged: some answers are not in the history yet"
                panes[1].focus()
                await pilot.press("enter")
                await pilot.pause()
                assert any("not in the history yet" in n.message for n in app._notifications)
                assert not panes[1].has_class("-chosen")
            await wait_for(pilot, lambda: screen.service.saving, what="the kept writes")
            panes[1].focus()
            await pilot.press("enter")
            await pilot.pause()
            turn = app.store.load_conversation(screen.conversation_id).turns[0]
            assert turn.active.backend == "beta" and panes[1].has_class("-chosen")
