"""The conversation list: recent first, a search box over every message, new/rename/delete keys."""

from __future__ import annotations

import re
import time

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Input, Label, ListItem, ListView

from ...sanitize import for_display
from .. import bindings
from .prompt import CleanInput


def _age(ts: float) -> str:
    seconds = max(0, time.time() - ts)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "now"


LEAD_CHARS = 20  # context kept before the first match: the row is two lines of ~26 characters


def snippet_parts(parts: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """A search hit's (text, matched) pieces, shown safely and with the match near the start
    (a long lead-in pushed it past the row's two lines)."""
    parts = [(re.sub(r"\s+", " ", for_display(text)), marked) for text, marked in parts]
    if parts and not parts[0][1] and len(parts[0][0]) > LEAD_CHARS:
        lead = parts[0][0][-LEAD_CHARS:]
        parts[0] = ("…" + lead[lead.find(" ") + 1:] if " " in lead else "…" + lead, False)
    return parts


class ConversationItem(ListItem):
    def __init__(self, conversation_id: int, title: str, detail: str, current: bool = False) -> None:
        super().__init__(classes="-current" if current else "")
        self.conversation_id = conversation_id
        self.title_text = title
        self.detail = detail

    def compose(self) -> ComposeResult:
        yield Label(Content(for_display(self.title_text)), classes="title")
        yield Label(self.detail, classes="detail")


class Sidebar(Vertical):
    BINDINGS = bindings.SIDEBAR
    DEFAULT_CSS = """
    Sidebar { width: 30; dock: left; border-right: solid $panel; background: $surface; }
    Sidebar.-hidden { display: none; }
    Sidebar #search { margin: 0 0 0 0; border: none; height: 1; background: $panel; }
    Sidebar #new { width: 1fr; height: 1; border: none; min-width: 0; }
    Sidebar ListView { height: 1fr; background: $surface; }
    Sidebar ListItem { padding: 0 1; height: auto; }
    Sidebar ListItem.-current .title { text-style: bold; color: $accent; }
    Sidebar ListItem .title { width: 1fr; height: 1; }
    Sidebar ListItem .detail { color: $text-muted; height: auto; max-height: 2; }
    Sidebar #list-label { color: $text-muted; padding: 0 1; height: 1; }
    """

    class Open(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class Action(Message):
        """rename / delete / undo_delete / new, for the screen to carry out."""

        def __init__(self, action: str, conversation_id: int | None) -> None:
            super().__init__()
            self.action = action
            self.conversation_id = conversation_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current_id: int | None = None

    def compose(self) -> ComposeResult:
        keys = lambda binding_id: bindings.keys_for_id(self.app, binding_id, first=True)  # noqa: E731
        yield Button(f"+ New chat ({keys('new_conversation')})", id="new", compact=True)
        yield CleanInput(placeholder=f"search ({keys('search')})", id="search", compact=True)
        yield Label("recent", id="list-label")
        yield ListView(id="conversations")

    @property
    def list_view(self) -> ListView:
        return self.query_one(ListView)

    @property
    def query_text(self) -> str:
        return self.query_one("#search", Input).value.strip()

    def show_conversations(self, summaries) -> None:
        """summaries: store.ConversationSummary list, most recent first."""
        self.query_one("#list-label", Label).update(f"recent ({len(summaries)})")
        items = [ConversationItem(s.id, s.title, f"{_age(s.updated)} · {s.turns} msg", s.id == self.current_id)
                 for s in summaries]
        self._fill(items)

    def show_hits(self, query: str, hits) -> None:
        """hits: store.SearchHit list; one row per conversation (its best hit)."""
        seen: dict[int, object] = {}
        for hit in hits:
            seen.setdefault(hit.conversation_id, hit)
        self.query_one("#list-label", Label).update(Content(f"{len(seen)} match(es) for {for_display(query)!r}"))
        items = []
        for hit in seen.values():
            snippet = Content.assemble(*[(text, "bold $accent" if marked else "")
                                         for text, marked in snippet_parts(hit.parts())])
            items.append(ConversationItem(hit.conversation_id, hit.conversation_title, "", hit.conversation_id == self.current_id))
            items[-1].detail = snippet
        self._fill(items)

    def _fill(self, items: list[ConversationItem]) -> None:
        view = self.list_view
        view.clear()
        view.extend(items)

    @property
    def selected_id(self) -> int | None:
        item = self.list_view.highlighted_child
        return item.conversation_id if isinstance(item, ConversationItem) else None

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(self.Open(event.item.conversation_id))

    @on(Button.Pressed, "#new")
    def _new(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Action("new", None))

    def action_rename(self) -> None:
        self.post_message(self.Action("rename", self.selected_id or self.current_id))

    def action_delete(self) -> None:
        self.post_message(self.Action("delete", self.selected_id))

    def action_undo_delete(self) -> None:
        self.post_message(self.Action("undo_delete", None))
