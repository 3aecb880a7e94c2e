"""Driving the chat app under Textual's Pilot against the loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3

from textual.worker import WorkerCancelled

from taskdiv_chat.config import Settings
from taskdiv_chat.tui.app import TaskdivApp
from taskdiv_chat.tui.widgets.messages import AssistantMessage

from .fake_server import Reply

SIZE = (100, 30)


class Script:
    """A responder: classification -> a letter, judge -> YES/NO, chat -> the next scripted answer."""

    def __init__(self, answers, letter: str = "G", same=False):
        self.answers = list(answers)
        self.letter = letter
        self.same = same  # the judge's verdict: a bool, or a function of the two responses
        self.chats: list[dict] = []  # chat request bodies, in order

    def __call__(self, body: dict):
        last = body["messages"][-1]["content"]
        if last.startswith("Classify the user prompt"):
            return Reply(self.letter)
        if last.startswith("Decide whether two responses"):
            a, b = re.findall(r"Response \d:\n<<<\n(.*?)\n>>>", last, re.S)
            same = self.same(a, b) if callable(self.same) else self.same
            return Reply("YES" if same else "NO")
        self.chats.append(body)
        reply = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Reply(reply) if isinstance(reply, str) else reply


async def wait_for(pilot, condition, timeout: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def make_app(settings: Settings, **kwargs) -> TaskdivApp:
    return TaskdivApp(settings, warm_up=False, **kwargs)


async def started(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.store is not None and app.screen.backend is not None, what="start-up")
    await pilot.pause()


async def settled(pilot) -> None:
    """Await every worker of the app, and those they start, until none is left running."""
    app = pilot.app
    while running := [w for w in app.workers if not w.is_finished]:
        await asyncio.wait_for(asyncio.gather(*(_ended(worker) for worker in running)), 60)
        await pilot.pause()


async def _ended(worker) -> None:
    """Until `worker` ends; one that fails still fails the test."""
    with contextlib.suppress(WorkerCancelled):  # replaced by a newer worker of its exclusive group, as meant
        await worker.wait()


async def send(pilot, text: str) -> AssistantMessage:
    screen = pilot.app.screen
    before = len(screen.chat.query(AssistantMessage))
    screen.prompt.area.focus()
    screen.prompt.area.load_text(text)
    await pilot.press("enter")
    await settled(pilot)
    assert len(screen.chat.query(AssistantMessage)) == before + 1
    answer = screen.last_answer()
    assert not screen.answering and answer.variants and not answer.streaming
    return answer


async def classified(pilot, answer: AssistantMessage) -> str:
    """The turn's category letter, awaited from the conversation service."""
    letter = await asyncio.wait_for(pilot.app.screen.service.category(answer.turn_id), 30)
    await pilot.pause()
    return letter


@contextlib.contextmanager
def held_by_another_instance(app):
    """The app's history file locked by another connection (BEGIN EXCLUSIVE) until the block ends."""
    app.store._db.execute("PRAGMA busy_timeout = 50")  # the real 10 s wait, shortened for the test
    locker = sqlite3.connect(app.store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()
