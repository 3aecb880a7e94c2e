"""Pilot tests of the chat app against the loopback OpenAI-compatible server.

The server is real HTTP on 127.0.0.1 (tests.support.fake_server); the store is a
real SQLite file in the test's data dir. The fake backend is an openai-kind
backend, so classification and judging go through the same server the way
they go through a real one: `Script` answers those prompts like a model would.
"""

from __future__ import annotations

import asyncio
import json

from textual import events

from taskdiv_chat import taxonomy
from taskdiv_chat.conversation import Classified, Failed, Measured, Measuring, StoreProblem
from taskdiv_chat.store import Store
from taskdiv_chat.tui.widgets.answer_body import shown
from taskdiv_chat.tui.widgets.messages import UserMessage
from tests.support.fake_server import Reply
from tests.support.pilot import SIZE, Script, classified, make_app, send, settled, started, wait_for


def store_of(app) -> Store:
    return app.store


async def test_send_streams_markdown_answer_and_stores_it(fake_server, fake_backend_settings):
    reply = "Here is **bold** text.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"
    fake_server.responder = Script([Reply(reply, chunk_delay=0.005)])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Say hello")
        assert answer.current.text == reply
        # rendered as Markdown: a list and a code fence, not raw text
        assert answer.query("MarkdownBulletList") and answer.query("MarkdownFence")
        meta = answer.meta_text
        assert "fake · test-model" in meta and "tok" in meta
        assert app.screen.prompt.area.text == ""
        conv = store_of(app).load_conversation(app.screen.conversation_id)
        assert [t.user.text for t in conv.turns] == ["Say hello"]
        assert conv.turns[0].variants[0].text == reply and conv.turns[0].variants[0].status == "done"
        # Up recalls the sent message
        await pilot.press("up")
        assert app.screen.prompt.area.text == "Say hello"


async def test_escape_cancels_and_keeps_partial_answer(fake_server, fake_backend_settings):
    words = " ".join(f"word{i}" for i in range(200))
    fake_server.responder = Script([Reply(words, chunk_delay=0.02)])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.load_text("Count")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.answering and screen.last_answer() is not None
                       and "word5" in screen.last_answer().body.segments[-1].source, what="some text")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.answering, what="cancel")
        answer = screen.last_answer()
        assert answer.current.finish_reason == "cancelled"
        assert "cut off" in str(answer.query_one("#cutoff").render())
        variant = store_of(app).load_conversation(screen.conversation_id).turns[0].variants[0]
        assert variant.status == "cut-off" and variant.finish_reason == "cancelled"
        assert variant.text.startswith("word0 word1") and "word199" not in variant.text
        # the answer shows what the store keeps, laid out after the stop
        await wait_for(pilot, lambda: not answer.body.finishing, what="the stopped text laid out")
        assert answer.current.text == variant.text
        assert "".join(m.source for m in answer.body.segments) == shown(variant.text)


async def test_regenerate_at_once_after_escape_regenerates_the_stopped_answer(fake_server, fake_backend_settings):
    # Once seen in a Pilot run: regenerate pressed the moment Esc let it through came out as a plain retry
    # (strategy "first", no badge): the screen said no answer was running while the stopped one was still
    # being closed, so the turn had no answer yet to diversify from.
    script = Script([Reply("tick tock", fault="endless"), "A different answer."], letter="G")
    fake_server.responder = script
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        screen.prompt.area.load_text("Count forever")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.answering and screen.last_answer() is not None
                       and "tock" in screen.last_answer().body.segments[-1].source, what="some text")
        screen.action_cancel()
        for _ in range(100_000):  # the next key, as soon as the screen takes one
            if not screen.answering:
                break
            await asyncio.sleep(0)
        screen.action_regenerate()
        await settled(pilot)
        answer = screen.last_answer()
        assert [v.strategy for v in answer.variants] == ["first", app.strategy]
        assert answer.variants[0].text.startswith("tick tock") and answer.variants[1].text == "A different answer."
        assert "unique" in str(answer.badge.render()) or "agree" in str(answer.badge.render())
        # a regeneration's request (the stopped answer, maybe trimmed to fit, and the request for another),
        # not a retry's plain history
        assert len(script.chats) == 2 and script.chats[1]["messages"] != script.chats[0]["messages"]


async def test_backend_error_shows_inline_and_retry_succeeds(fake_server, fake_backend_settings):
    fake_server.responder = Script([Reply(fault="401"), "Recovered answer."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Hello?")
        assert answer.current.error and "authentication failed" in answer.current.error
        assert answer.query_one("#error-box").has_class("-shown")
        assert app.screen.prompt.area.text == ""  # the message itself was stored, not lost
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(answer.variants) == 2 and not app.screen.answering, what="retry")
        assert answer.current.text == "Recovered answer." and not answer.current.error
        assert not answer.query_one("#error-box").has_class("-shown")


async def test_newline_keys_paste_and_huge_paste(fake_server, fake_backend_settings):
    fake_server.responder = Script(["ok"])
    settings = fake_backend_settings.model_copy(deep=True)
    settings.backends["fake"].context_window = 2048
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        area = app.screen.prompt.area
        area.focus()
        await pilot.press("a", "ctrl+j", "b", "alt+enter", "c")
        assert area.text == "a\nb\nc"
        area.load_text("")
        area.post_message(events.Paste("line1\r\nline2\x1b[31m red\x00\x07"))
        await pilot.pause()
        assert area.text == "line1\nline2 red"  # the whole escape sequence goes, not only its ESC
        area.load_text("")
        huge = ("lorem ipsum dolor sit amet " * 40_000)[:1_000_000]
        area.post_message(events.Paste(huge))
        await pilot.pause()
        assert area.text == ""  # not in the text area (seconds per key there)
        assert app.screen.prompt.attachment == huge.replace("\r", "")
        await pilot.press("enter")
        await pilot.pause(0.3)
        notice = app.screen.chat.query("Notice")
        assert notice and "more than the 2,048-token context window" in str(notice.last().render())
        assert app.screen.prompt.attachment  # kept, nothing lost
        assert app.screen.conversation_id is None and fake_server.requests == []
        await pilot.click("#remove-attachment")  # the button made with the first attachment
        await pilot.pause()
        assert app.screen.prompt.attachment == "" and not app.screen.query_one("#attachment").has_class("-shown")


async def test_override_category_is_saved_and_used_by_regenerate(fake_server, fake_backend_settings):
    script = Script(["First answer.", "Second answer."], letter="A")
    fake_server.responder = script
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Tell me about lighthouses")
        user = app.screen.chat.query(UserMessage).last()
        assert await classified(pilot, answer) == "A" and user.chip.letter == "A"
        await pilot.click(user.chip)
        await pilot.pause()
        await pilot.press(*["down"] * 6, "enter")  # A..G: G is the 7th
        await wait_for(pilot, lambda: user.chip.letter == "G", what="override")
        turn = store_of(app).load_conversation(app.screen.conversation_id).turns[0]
        assert turn.user.override == "G"
        assert "G Creative" in str(user.chip.render())
        await pilot.press("ctrl+r")
        await settled(pilot)
        assert len(script.chats) == 2 and not app.screen.answering
        sent = script.chats[1]["messages"]
        g = taxonomy.get("G")
        assert sent[-1]["role"] == "user" and g.regen_instruction.split(":")[0][:30] in sent[-1]["content"]
        assert sent[-2] == {"role": "assistant", "content": "First answer."}


async def test_search_export_rename_delete(fake_server, fake_backend_settings, isolated_dirs):
    fake_server.responder = Script(["An answer about penguins.", "An answer about volcanoes."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await send(pilot, "penguins please")
        first = app.screen.conversation_id
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.screen.conversation_id is None, what="new chat")
        await send(pilot, "volcanoes please")
        second = app.screen.conversation_id
        sidebar = app.screen.sidebar
        assert [item.conversation_id for item in sidebar.list_view.children] == [second, first]
        # search
        await pilot.press("ctrl+f")
        await pilot.press(*"penguin")
        await pilot.pause(0.2)
        assert [item.conversation_id for item in sidebar.list_view.children] == [first]
        await pilot.press("enter", "enter")  # to the list, open the hit
        await wait_for(pilot, lambda: app.screen.conversation_id == first, what="open hit")
        assert "penguins" in app.screen.last_answer().current.text
        # export, to the default path the dialog offers
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        exported = list((isolated_dirs / "data" / "exports").glob("*.md"))
        assert len(exported) == 1 and "An answer about penguins." in exported[0].read_text()
        app.screen.action_export("json")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        data = json.loads(next((isolated_dirs / "data" / "exports").glob("*.json")).read_text())
        assert data["messages"][0]["text"] == "penguins please"
        # rename
        app.screen.action_rename()
        await pilot.pause()
        await pilot.press("ctrl+u", *"Birds", "enter")
        await pilot.pause()
        assert store_of(app).load_conversation(first).title == "Birds"
        # delete, then undo
        app.screen.action_delete()
        await wait_for(pilot, lambda: app.screen.conversation_id is None, what="delete")
        assert first not in [s.id for s in store_of(app).list_conversations()]
        app.screen.undo_delete()
        assert first in [s.id for s in store_of(app).list_conversations()]


async def test_theme_choice_persists_and_user_themes_load(fake_server, fake_backend_settings, isolated_dirs):
    themes = isolated_dirs / "config" / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.toml").write_text('name = "mine"\ndark = true\nprimary = "#ff0000"\n')
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "not a colour"\n')
    fake_server.responder = Script(["ok"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert app.theme == "taskdiv-dark"
        assert {"taskdiv-dark", "taskdiv-light", "paper", "midnight", "mine"} <= set(app.available_themes)
        assert any("broken.toml" in e for e in app.theme_errors)
        app.theme = "paper"
        await pilot.pause()
    assert not (isolated_dirs / "config" / "config.toml").exists()  # the config is never written
    again = make_app(fake_backend_settings)
    async with again.run_test(size=SIZE) as pilot:
        assert again.theme == "paper"


async def test_keymap_remaps_by_binding_id_and_help_lists_it(fake_server, fake_backend_settings):
    script = Script(["One.", "Two."], letter="B")
    fake_server.responder = script
    settings = fake_backend_settings.model_copy(deep=True)
    settings.ui.keymap = {"regenerate": "f9", "nonexistent": "f10"}
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert any("nonexistent" in n.message for n in app._notifications)
        await send(pilot, "Name a fruit")
        await pilot.press("f9")
        await wait_for(pilot, lambda: len(script.chats) == 2 and not app.screen.answering, what="regenerate by f9")
        await pilot.press("f1")
        await pilot.pause()
        table = app.screen.query_one("DataTable")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        row = rows.index(["f9", "Regenerate the last answer with the current strategy", "regenerate"])
        assert next(r for r in reversed(rows[:row]) if r[1:] == ["", ""]) == ["Chat", "", ""]  # its place


async def test_draft_survives_restart(fake_server, fake_backend_settings):
    fake_server.responder = Script(["ok"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await send(pilot, "first")
        app.screen.prompt.area.focus()
        await pilot.press(*"unsent words")
        await pilot.press("ctrl+q")
    again = make_app(fake_backend_settings)
    async with again.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: again.screen.prompt.area.text == "unsent words", what="draft restored")
        assert again.screen.last_answer().current.text == "ok"  # the last conversation reopened


async def test_draft_of_a_chat_never_sent_survives_restart(fake_server, fake_backend_settings):
    # Opening the app must not overwrite the saved draft of a new chat with the empty input.
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        app.screen.prompt.area.focus()
        await pilot.press(*"unsent idea")
        await pilot.press("ctrl+q")
    again = make_app(fake_backend_settings)
    async with again.run_test(size=SIZE) as pilot:
        await started(pilot)
        await wait_for(pilot, lambda: again.screen.prompt.area.text == "unsent idea", what="draft restored")


async def test_variant_navigation_and_branching(fake_server, fake_backend_settings):
    script = Script(["Story one.", "Story two.", "Sequel to one."], letter="G")
    fake_server.responder = script
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        first = await send(pilot, "Tell a story")
        await pilot.press("ctrl+r")
        await settled(pilot)
        assert len(first.variants) == 2 and first.current.text == "Story two."
        assert "2/2" in str(first.query_one("#nav").render())
        await pilot.press("alt+left")
        await settled(pilot)
        assert first.index == 0
        assert "1/2" in str(first.query_one("#nav").render())
        await send(pilot, "Continue it")
        store = store_of(app)
        conv = store.load_conversation(screen.conversation_id)
        assert [t.user.text for t in conv.turns] == ["Tell a story", "Continue it"]
        assert conv.turns[1].user.parent_variant_id == conv.turns[0].variants[0].id
        # the continuation was generated from variant 1
        assert {"role": "assistant", "content": "Story one."} in script.chats[-1]["messages"]
        # showing variant 2 hides the branch that follows variant 1; it stays in the store
        first.focus()
        await pilot.press("right")
        await wait_for(pilot, lambda: first.index == 1 and len(screen.chat.query(UserMessage)) == 1,
                       what="other branch")
        exported = store.export_json(screen.conversation_id)
        assert "Continue it" in [m["text"] for m in exported["messages"]]
        await pilot.press("left")
        await wait_for(pilot, lambda: len(screen.chat.query(UserMessage)) == 2, what="branch back")
        assert screen.last_answer().current.text == "Sequel to one."


STORIES = ["A dragon guards a castle in the mountains.", "A robot wakes up alone on Mars.",
           "A detective in rainy Paris hunts a painter.", "A dragon sleeps in a castle until a knight comes."]


def same_plot(a: str, b: str) -> bool:
    return "dragon" in a and "dragon" in b


async def test_regenerate_three_times_fills_badge_and_views(fake_server, fake_backend_settings):
    script = Script(STORIES, letter="G", same=same_plot)
    fake_server.responder = script
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        answer = await send(pilot, "Write a short story")
        shown: list[tuple[str, str]] = []
        original = answer.badge.show_text
        answer.badge.show_text = lambda text, status="pending": (shown.append((text, status)), original(text, status))
        for n in (2, 3, 4):
            screen.prompt.area.focus()
            await pilot.press("ctrl+r")  # works while the input has focus
            await settled(pilot)  # the answer, then its measurement
            assert len(answer.variants) == n and not screen.answering and shown[-1][1] != "pending"
        # the regenerations used the category's anchored prompt, with every earlier answer in context
        last_request = script.chats[-1]["messages"]
        assert [m["content"] for m in last_request if m["role"] == "assistant"] == STORIES[:3]
        assert shown[-1] == ("3/4 unique · wants variety", "warn")
        assert any(status == "pending" and "embedding diversity" in text for text, status in shown)
        assert answer.badge.has_class("-warn")
        saved = store_of(app).load_conversation(screen.conversation_id).turns[0].variants[-1].metrics
        assert saved["unique"] == 3 and saved["groups"] == [[0, 3], [1], [2]] and saved["newest_duplicates"] == 0
        # typing is not blocked while the badge works
        await pilot.press("h", "i")
        assert screen.prompt.area.text == "hi"
        await pilot.click(answer.badge)
        await pilot.pause(0.2)
        detail = app.screen
        assert type(detail).__name__ == "DetailScreen"
        texts = " ".join(str(w.render()) for w in detail.query("Static"))
        assert "answer 4 (newest) duplicates answer 1" in texts
        table = detail.query_one("DataTable")
        assert str(table.get_cell_at((0, 4))).startswith("= ") and str(table.get_cell_at((1, 3))).startswith("≠ ")
        await pilot.press("escape", "f4")
        await pilot.pause(0.2)
        view = app.screen
        assert type(view).__name__ == "HomogenizationScreen"
        heads = [str(w.render()) for w in view.query(".column-head")]
        assert heads == ["answer 1 · group 1", "answer 2 · group 2", "answer 3 · group 3", "answer 4 · group 1"]
        novelty = view.query_one("#novelty")
        assert [str(c) for c in novelty.get_row_at(0)] == ["G Creative", "1", "3", "2", "67%"]


async def test_brainstorm_adds_several_variants(fake_server, fake_backend_settings):
    settings = fake_backend_settings.model_copy(deep=True)
    settings.regenerate.brainstorm_n = 3
    reply_k = ("Response 1: A dragon guards the old castle.\n\nResponse 2: A robot wakes up on Mars.\n\n"
               "Response 3: A detective hunts a painter in Paris.")
    script = Script(["A first story.", reply_k], letter="G", same=False)
    fake_server.responder = script
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "Write a story")
        app.set_strategy("anchored-system")
        await pilot.press("ctrl+g")
        await settled(pilot)
        assert len(answer.variants) == 4 and not app.screen.answering
        assert [v.text for v in answer.variants[1:]] == ["A dragon guards the old castle.", "A robot wakes up on Mars.",
                                                         "A detective hunts a painter in Paris."]
        system = script.chats[-1]["messages"][0]
        assert system["role"] == "system" and "3" in system["content"]
        variants = store_of(app).load_conversation(app.screen.conversation_id).turns[0].variants
        assert [v.strategy for v in variants] == ["first"] + ["anchored-system"] * 3
        assert answer.badge.has_class("-good")


async def test_autoscroll_only_while_at_the_bottom(fake_server, fake_backend_settings):
    lines = [f"Line {i} of a long answer.\n\n" for i in range(120)]
    fake_server.responder = Script(["Short first answer.", Reply(chunks=lines, chunk_delay=0.02)])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        chat = app.screen.chat
        await send(pilot, "first")
        app.screen.prompt.area.load_text("second")
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.max_scroll_y > 20, what="a screenful")
        assert chat.scroll_y == chat.max_scroll_y  # following the stream
        chat.scroll_home(animate=False)  # the user scrolls up to read
        await pilot.pause(0.3)
        assert app.screen.answering and chat.scroll_y == 0 and chat.max_scroll_y > 20
        chat.scroll_end(animate=False)  # back at the bottom: follows again
        await wait_for(pilot, lambda: not app.screen.answering, what="end")
        await pilot.pause(0.2)
        assert chat.scroll_y == chat.max_scroll_y


async def test_copy_answer_and_code_block(fake_server, fake_backend_settings):
    reply = "Two blocks:\n\n```python\nprint(1)\n```\n\nand\n\n```sh\necho two\n```\n"
    fake_server.responder = Script([reply])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        answer = await send(pilot, "code please")
        await pilot.press("alt+c")
        assert app.clipboard == reply
        answer.focus()
        await pilot.press("k")  # two blocks: pick one
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.clipboard == "echo two"


async def test_palette_lists_every_action_and_switches_strategy(fake_server, fake_backend_settings):
    fake_server.responder = Script(["ok"])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Regenerate", "Brainstorm variants", "Stop answer", "Retry", "Category override",
                      "Previous variant", "Next variant", "Diversity detail", "Homogenization view", "Copy answer",
                      "Copy code block", "New conversation", "Search conversations", "Rename conversation",
                      "Delete conversation", "Export as Markdown", "Export as JSON", "Theme", "Help: keys"):
            assert title in commands, title
        assert "Strategy: anchored-icr (current)" in commands
        commands["Strategy: general-icr"].callback()
        assert app.strategy == "general-icr"
        assert "general-icr" in str(app.screen.status.query_one("#strategy").render())


async def test_remapped_keys_are_named_in_the_ui(fake_server, fake_backend_settings):
    fake_backend_settings.ui.keymap = {"regenerate": "f9", "help": "f10", "send": "ctrl+o"}
    fake_server.responder = Script(["An answer."])
    app = make_app(fake_backend_settings, new_chat=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        welcome = str(app.screen.query_one("#empty").render())
        assert "F9 regenerates" in welcome and "F10 keys" in welcome and "press ctrl+o" in welcome
        assert "ctrl+r" not in welcome
        assert "ctrl+o send" in app.screen.prompt.area.placeholder
        palette = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert palette["Help: keys"].endswith("(F10)")


def test_unknown_textual_version_falls_back_to_stock_markdown():
    from textual.widgets import Markdown

    from taskdiv_chat.tui import compat
    from taskdiv_chat.tui.compat.markdown_fast import FastMarkdown

    assert compat.known() and compat.markdown_widget() is FastMarkdown
    assert not compat.known("99.0.0") and compat.markdown_widget("99.0.0") is Markdown


def test_textual_version_without_importlib_metadata_is_the_installed_one():
    from importlib.metadata import version

    from taskdiv_chat.tui import compat

    assert compat.installed_version() == version("textual")


async def test_export_asks_where_and_shows_a_bad_folder_in_the_dialog(fake_server, fake_backend_settings,
                                                                      isolated_dirs):
    fake_server.responder = Script(["An answer about penguins."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await send(pilot, "penguins please")
        await pilot.press("ctrl+s")
        await pilot.pause()
        field = app.screen.query_one("#path")
        default = isolated_dirs / "data" / "exports" / f"penguins-please-{app.screen_stack[0].conversation_id}.md"
        assert field.value == str(default)
        missing = isolated_dirs / "no-such-folder" / "chat.md"
        field.value = str(missing)
        await pilot.press("enter")
        await pilot.pause()
        error = app.screen.query_one("#error")
        assert error.has_class("-shown") and "no such folder" in str(error.render())
        assert app.screen.query_one("#path").value == str(missing)  # still there to correct
        field.value = str(isolated_dirs / "chat.txt")
        await pilot.press("enter")
        await pilot.pause()
        assert ".md or .json" in str(error.render()) and not (isolated_dirs / "chat.txt").exists()
        chosen = isolated_dirs / "chat.json"
        field.value = str(chosen)
        await pilot.press("enter")
        await pilot.pause()
        assert not app.screen.query("#path")  # the dialog closed
        assert json.loads(chosen.read_text())["messages"][1]["text"] == "An answer about penguins."
        assert chosen.stat().st_mode & 0o777 == 0o600
        assert not missing.parent.exists() and not default.exists()


async def test_pastes_into_search_and_rename_lose_their_escape_sequences(fake_server, fake_backend_settings):
    fake_server.responder = Script(["An answer."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await send(pilot, "hello")
        await pilot.press("ctrl+f")
        search = app.screen.sidebar.query_one("#search")
        assert search.has_focus
        search.post_message(events.Paste("pen\x1b[31mguin\x1b]0;pwned\x07\x00"))
        await pilot.pause()
        assert search.value == "penguin"
        app.screen.action_rename()
        await pilot.pause()
        rename = app.screen.query_one("#value")
        await pilot.press("ctrl+u")
        rename.post_message(events.Paste("\x1b[2JBirds\x1b[1;1H\x07"))
        await pilot.pause()
        assert rename.value == "Birds"


async def test_what_the_service_finds_while_the_screen_closes_is_dropped_not_raised(fake_server,
                                                                                     fake_backend_settings):
    # A screen's widgets go before its on_unmount closes the service: a measurement or a classification
    # that ends in between told a chat that was no longer there (NoMatches, a worker failure at exit, seen
    # in CI after a brainstorm). Each event that needs the chat is dropped then; the others still tell.
    fake_server.responder = Script(["An answer."])
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        await send(pilot, "A question")
        turn_id = screen.last_answer().turn_id
        await screen.chat.remove()
        notices: list[str] = []
        app.notify = lambda message, **kwargs: notices.append(message)
        for event in (Classified(turn_id, {"letter": "G"}), Measuring(turn_id, {}),
                      Measured(turn_id, None), Failed(turn_id, "measure", "judge gone"),
                      StoreProblem("disk full", 1)):
            screen.service.emit(event)
        await pilot.pause()
        assert screen.answer_for(turn_id) is None and screen.user_for(turn_id) is None
        assert notices and "disk full" in notices[0]
