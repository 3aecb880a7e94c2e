"""The app starts on a poisoned last conversation (issue: one bad row must never stop the start)."""

from __future__ import annotations

import copy

from taskdiv_chat.paths import data_dir
from taskdiv_chat.store import DB_NAME, Store
from taskdiv_chat.tui.state import save_state
from taskdiv_chat.tui.widgets.messages import AssistantMessage, UserMessage
from tests.support.pilot import SIZE, make_app, started, wait_for
from tests.test_hostile_import import GOOD, poison_rows


async def test_app_reopens_a_poisoned_last_conversation(fake_backend_settings):
    path = data_dir() / DB_NAME
    with Store(path) as store:
        cid = store.import_json(copy.deepcopy(GOOD))
    poison_rows(path)  # a category letter 5, times of 1e20 and Infinity, JSON that does not parse
    save_state(last_conversation=cid)
    app = make_app(fake_backend_settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        screen = app.screen
        await wait_for(pilot, lambda: screen.query(UserMessage) and screen.query(AssistantMessage),
                       what="the reopened conversation")
        assert screen.conversation_id == cid
        assert app.store.problems  # what was repaired is there for the UI to show
    assert app.return_code in (None, 0)
