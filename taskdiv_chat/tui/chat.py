"""The chat screen: conversation, input, sidebar, status bar; a view over the conversation service.

Every flow (send, retry, regenerate, brainstorm, measure) runs in
taskdiv_chat.conversation.ConversationService; this screen starts them in
workers and shows their events. The service is made after the first paint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TextArea

from .. import config, taxonomy
from ..capability import capability_hint
from ..config import data_dir
from ..conversation import (Classified, ConversationService, Delta, Failed, Measured, Measuring, NotSent, Started,
                            StoreProblem, StoreRecovered, TurnAdded, VariantSaved, Waiting, count_tokens, store_errors,
                            title_for, usable)
from ..sanitize import for_display
from . import bindings, collector, services
from .bindings import keys_for_id
from .state import load_state, save_state
from .widgets.compare import ComparePane, CompareView
from .widgets.messages import (AssistantMessage, Badge, CategoryChip, ChatLog, Notice, UserMessage, VariantView,
                               code_blocks, model_label)
from .widgets.prompt import PromptArea, PromptBar
from .widgets.sidebar import Sidebar
from .widgets.status import StatusBar

# Streamed text reaches the Markdown at most every FLUSH_EVERY s (one write per token costs ~11 s of CPU
# per 3,000 tokens). Every write lays the screen out again, which grows costly for long answers, so the
# interval stretches (up to FLUSH_MAX) while the UI thread is busier than BUSY_SHARE of the time.
FLUSH_EVERY = 0.08
FLUSH_MAX = 0.5
BUSY_SHARE = 0.4
# Text arriving faster than BURST_RATE characters/s (a cached or replayed answer, not a model typing) is held
# back, for up to BURST_HOLD s from the first held chunk, and rendered once at the end: streaming a burst
# mounts and lays out the same blocks several times over while the text is already there.
BURST_RATE = 20_000
BURST_HOLD = 1.0
YIELD_EVERY = 64  # chunks handled before giving the event loop a turn in a burst
YIELD_CHARS = 256_000  # or characters: a server sending 64 KiB chunks must not hold Esc back
DRAFT_DELAY = 0.5  # seconds of no typing before the draft is saved


class StreamFlusher:
    """Streamed text on its way to an answer's body: batched (one write per interval), held back while it
    arrives as a burst, and let out by `tick` when the stream stalls with text still held."""

    def __init__(self, body) -> None:
        self.body = body
        self.pending: list[str] = []
        self.pending_chars = 0
        self.held_since = 0.0  # when the first pending chunk arrived
        self.last_flush = time.monotonic()
        self.interval = FLUSH_EVERY
        self.ui_cpu = time.thread_time()  # the UI thread's CPU time: how busy rendering keeps it
        self._lock = asyncio.Lock()  # one write at a time: the stream's and the ticker's

    def add(self, text: str) -> None:
        if not self.pending:
            self.held_since = time.monotonic()
        self.pending.append(text)
        self.pending_chars += len(text)

    async def maybe_flush(self) -> None:
        now = time.monotonic()
        held = now - self.held_since
        # judged once text has been held for a flush interval (the rate of a few chunks means nothing)
        bursting = held < BURST_HOLD and (held < self.interval or self.pending_chars > BURST_RATE * held)
        if self.pending and now - self.last_flush >= self.interval and not bursting:
            busy = (time.thread_time() - self.ui_cpu) / (now - self.last_flush)
            self.interval = (min(FLUSH_MAX, self.interval * 1.5) if busy > BUSY_SHARE
                             else max(FLUSH_EVERY, self.interval / 1.5))
            self.last_flush, self.ui_cpu = now, time.thread_time()
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if self.pending:
                batch = "".join(self.pending)
                self.pending.clear()
                self.pending_chars = 0
                await self.body.write(batch)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.maybe_flush()


def variant_view(variant) -> VariantView:
    """The store's Variant as the answer widget shows it."""
    usage = variant.usage or {}
    timings = variant.timings or {}
    finish_reason = {"done": None, "streaming": "streaming"}.get(variant.status, variant.finish_reason or "cancelled")
    return VariantView(id=variant.id, text=variant.text, backend=variant.backend or "", model=variant.model or "",
                       tokens=usage.get("completion_tokens"), seconds=timings.get("total_s"),
                       finish_reason=finish_reason,
                       error=variant.error, strategy=variant.strategy, source=variant)


class ChatScreen(Screen):
    BINDINGS = bindings.CHAT

    def __init__(self) -> None:
        super().__init__()
        self.service: ConversationService | None = None  # made after the first paint
        self.answering = False
        self._draft_timer = None
        self._draft_restored = False  # until a conversation's draft is shown, the input holds nothing to save
        self._last_deleted: int | None = None

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                with ChatLog(id="chat"):
                    yield Static("Starting…", id="empty")
                yield PromptBar(id="prompt-bar")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def chat(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def prompt(self) -> PromptBar:
        return self.query_one(PromptBar)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def sidebar(self) -> Sidebar:
        return self.query_one(Sidebar)

    @property
    def conversation_id(self) -> int | None:
        return self.service.conversation_id if self.service else None

    @property
    def backend(self):
        """The chat backend's client (made once by the service)."""
        return self.service.backend() if self.service else None

    def key_for(self, binding_id: str) -> str:
        """The first key the user has for a binding, as the live keymap says (for messages)."""
        return keys_for_id(self.app, binding_id, first=True)

    @property
    def is_local(self) -> bool:
        return self.app.backend_config.kind == "local"

    def on_mount(self) -> None:
        app = self.app
        cfg = app.backend_config
        model = cfg.model or "?"
        self.status.set_backend(model_label(app.backend_name, model, self.is_local),
                                "real server: taskdiv-chat config init" if self.is_local else
                                capability_hint(cfg))
        if self.is_local:
            self.status.query_one("#hint").tooltip = (
                f"The embedded SmolLM2-135M is a demo: fast, offline, weak. For real answers add a server "
                f"(Ollama, vLLM, llama.cpp, OpenAI...) in {config.config_path()} and set default_backend to it; "
                f"`taskdiv-chat config init` writes an example.")
        self.status.set_context(0, cfg.context_window)
        self.status.set_strategy(app.strategy)
        self.status.set_activity("warming up models…" if app.warm_up else "")
        self.prompt.area.focus()
        # Everything else after the first frame is on screen.
        self.call_after_refresh(self._start)

    @work(exclusive=True, group="start")
    async def _start(self) -> None:
        """A worker, so quitting cancels it rather than tearing the screen down under it."""
        if not self.app.exiting:
            await self._after_first_paint()

    async def _after_first_paint(self) -> None:
        self.app.log(f"first paint after {time.monotonic() - self.app.started:.3f} s")
        from ..store import StoreError

        try:
            store = self.app.open_store()
        except StoreError as exc:  # a damaged or newer database: say so, touch nothing
            self.app.exit(return_code=2, message=for_display(f"taskdiv-chat: {exc}"))
            return
        service = ConversationService(store, self.app.settings, self.app.backend_name)
        service.listeners.append(self._service_event)
        backend = await asyncio.to_thread(service.backend)  # its client now, not on the first Enter
        services.start_importing_first_answer_modules()
        self.service = service
        if self.app.warm_up:
            self.warm_up()
        wanted = None if self.app.new_chat else (self.app.start_conversation_id
                                                 or load_state().get("last_conversation"))
        early = self.prompt.area.text  # typed in the moment between the mode switch and the draft restore
        # What exists now lives as long as the app (modules, screens, the client): frozen out of the collector's
        # way, a full collection during a long answer scans only what was made since (two such collections
        # took ~0.3 s of a burst answer's lag). The conversation's widgets come after: they can be collected.
        gc.freeze()
        await self.open_conversation(wanted)
        self.refresh_sidebar()
        if self.app.handover is not None:
            self._take_handover(early, *self.app.handover)
            self.app.handover = None

    def _take_handover(self, early: str, text: str, attachment: str, send: bool) -> None:
        """Add what was typed on the boot screen to the restored draft (neither is lost); send it if
        Enter was pressed there."""
        bar = self.prompt
        draft = bar.area.text
        parts = [draft] + [t for t in (early, text) if t and t not in draft]
        if len(parts) > 1:
            bar.area.load_text("\n".join(p for p in parts if p))
            bar.area.move_cursor(bar.area.document.end)
        if attachment:
            bar.set_attachment(f"{bar.attachment}\n\n{attachment}" if bar.attachment else attachment)
        if send:
            bar.area.action_send()

    async def on_unmount(self) -> None:
        collector.release_all()  # a flow's release waits for a refresh that no longer comes
        if self.service is not None:
            await self.service.aclose()

    @work(exclusive=True, group="warm-up")
    async def warm_up(self) -> None:
        """Load the classifier and the embedding model (and the local model) in the background."""
        self.status.set_activity("warming up models…")
        try:
            await services.warm_up(self.backend)
        except Exception as exc:  # a model that fails to load is reported, the chat still works
            self.app.notify(f"background models failed to load: {exc}", severity="warning", timeout=10)
        self.status.set_activity("")

    # --- conversations -----------------------------------------------------------------------

    async def open_conversation(self, conversation_id: int | None) -> None:
        """Show a conversation (None: a new, not yet created one) and restore its draft."""
        store = self.app.store
        self._save_draft_now()
        conv = self.service.open(conversation_id)
        self.sidebar.current_id = self.conversation_id
        if conv:
            save_state(last_conversation=conv.id)
        self.sub_title = for_display(conv.title) if conv else "new chat"
        await self.chat.remove_children()
        widgets = []
        if conv is None or not conv.turns:
            widgets.append(Static(self._welcome(), id="empty"))
        for turn in conv.turns if conv else []:
            widgets += self._turn_widgets(turn)
        await self.chat.mount_all(widgets)
        self.chat.scroll_end(animate=False)
        self.chat.anchor()
        self.prompt.set_text(store.load_draft(self.conversation_id))
        self._draft_restored = True
        self.prompt.area.sent_history = [t.user.text for t in conv.turns] if conv else []
        self.update_context()
        self.service.classify_pending()

    def _welcome(self) -> Content:
        key = self.key_for
        lines = [f"Type a message and press {key('send')}.",
                 f"Every message gets a task category (the chip); {key('regenerate')} regenerates with the strategy "
                 f"of that category and the badge tells whether the new answer is functionally new.",
                 f"{key('help')} keys · {self.app.COMMAND_PALETTE_BINDING} every action · {key('toggle_sidebar')} "
                 f"conversations"]
        if self.is_local:
            lines.append("You are on the embedded demo model (SmolLM2-135M): fast, offline, weak. "
                         "Point default_backend at a real server in the config for real answers.")
        return Content("\n\n".join(lines))

    def _turn_widgets(self, turn) -> list:
        user = UserMessage(turn.user.id, turn.user.text, turn.user.letter, turn.user.override is not None,
                           id=f"user-{turn.user.id}")
        answer = AssistantMessage(turn.user.id, [variant_view(v) for v in turn.variants], turn.active_index or 0,
                                  is_local=self.is_local, id=f"answer-{turn.user.id}")
        report = services.report_from_variants(turn.variants)
        if report is not None:
            answer.initial_badge = (services.badge_label(report), services.badge_status(report))
        return [user, answer]

    def refresh_sidebar(self) -> None:
        store = self.app.store
        if store is None:
            return
        query = self.sidebar.query_text
        if query:
            self.sidebar.show_hits(query, store.search(query))
        else:
            self.sidebar.show_conversations(store.list_conversations(limit=200))

    def _messages(self, kind: type) -> list:
        """The chat's messages of one kind; none once the screen is closing (its widgets go before its
        on_unmount, while a measurement or a classification may still be telling what it found)."""
        try:
            return list(self.chat.query(kind))
        except NoMatches:
            return []

    def _answers(self) -> list[AssistantMessage]:
        return self._messages(AssistantMessage)

    def last_answer(self) -> AssistantMessage | None:
        answers = self._answers()
        return answers[-1] if answers else None

    def answer_for(self, turn_id) -> AssistantMessage | None:
        for answer in self._answers():
            if answer.turn_id == turn_id:
                return answer
        return None

    def user_for(self, turn_id) -> UserMessage | None:
        for user in self._messages(UserMessage):
            if user.turn_id == turn_id:
                return user
        return None

    # --- sending -----------------------------------------------------------------------------

    @on(PromptArea.Submitted)
    def _submitted(self, event: PromptArea.Submitted) -> None:
        event.stop()
        text = self.prompt.full_text
        if not text.strip():
            return
        if self.answering:
            self.app.notify(f"An answer is still running: {self.key_for('cancel')} stops it. Your message stays "
                            f"in the input.", severity="warning", timeout=4)
            return
        if self.service is None:
            self.app.notify("Still starting, try again in a moment.", timeout=3)
            return
        self.answering = True  # until the flow's worker has started, a second Enter must not send again
        self._forget_sent_draft()
        self.run_worker(self._send(text), exclusive=True, group="answer")

    async def _send(self, text: str) -> None:
        """Send: the service stores the message and starts the request; the screen catches up after."""
        events = self.service.send(text)
        try:
            first = await anext(events)
            if isinstance(first, NotSent):
                await self._notice(f"Not sent: this message is about {first.tokens:,} tokens, more than the "
                                   f"{first.window:,}-token context window of {first.backend} (it stays in the "
                                   f"input). Shorten it or use a backend with a larger context_window.")
                return
            answer = await self._show_turn(first)
            await self._show_flow(answer, events, "answering (first)…")
        finally:
            self.answering = False  # also when the flow failed before it showed anything
            await events.aclose()

    async def _show_turn(self, added: TurnAdded, answer=None) -> AssistantMessage:
        """The sent message and an empty answer (or the given widget) on screen; the input cleared."""
        if added.new_conversation:
            self._write(self.app.store.save_draft, None, "")  # the new chat's draft was this message: ctrl+n must not bring it back
            self.sidebar.current_id = added.conversation_id
            save_state(last_conversation=added.conversation_id)
            self.sub_title = for_display(title_for(added.text))
        self.prompt.clear()
        self.prompt.area.remember(added.text)
        if (empty := self.chat.query("#empty")):
            await empty.remove()
        user = UserMessage(added.turn_id, added.text, None, id=f"user-{added.turn_id}")
        if answer is None:
            answer = AssistantMessage(added.turn_id, [], is_local=self.is_local, id=f"answer-{added.turn_id}")
        await self.chat.mount_all([user, answer])
        self.chat.anchor()
        self._write(self.app.store.save_draft, added.conversation_id, "")
        if added.dropped:
            self.app.notify(f"{added.dropped} older message(s) left out to fit the context window.", timeout=5)
        return answer

    async def _notice(self, text: str) -> None:
        await self.chat.mount(Notice(Content(for_display(text))))
        self.chat.scroll_end(animate=False)

    # --- streaming ---------------------------------------------------------------------------

    async def _show_flow(self, answer: AssistantMessage, events, activity: str, analyze: bool = False) -> None:
        """Show a flow's answers in `answer` as they stream (a brainstorm's one after the other), each
        saved one as a variant; then, for regenerations, measure the turn's diversity."""
        body = answer.body
        view: VariantView | None = None  # what is shown while streaming
        saved: list[VariantView] = []
        failed: list[str] = []
        notes: list[str] = []
        parts: list[str] = []
        flusher = StreamFlusher(body)
        ticker = asyncio.create_task(flusher.tick())  # lets held text out while the stream stalls
        count, unyielded = 0, 0
        stopped = stopped_late = False
        self.answering = answer.streaming = True
        self.status.set_activity(activity)
        answer.busy = activity if analyze else None  # not the figures of the variant shown before
        answer.refresh_footer()
        if analyze:
            answer.show_badge("…", "pending")
        try:
            collector.hold()  # no full garbage collection until the answer is on screen (released in finally)
            async for event in events:
                if isinstance(event, Started):
                    if view is None:
                        view = VariantView(id=event.variant_id, text="", backend=event.backend, model=event.model,
                                           strategy=event.strategy)
                        await answer.add_variant(view)
                    elif event.index > 0:  # the next answer of a brainstorm, in the same preview
                        parts.append("\n\n---\n\n")
                        flusher.add("\n\n---\n\n")
                elif isinstance(event, Delta):
                    if not count:
                        self.status.set_activity(activity)  # no longer "waiting to retry"
                    parts.append(event.text)
                    flusher.add(event.text)
                    count += 1
                    unyielded += len(event.text)
                    await flusher.maybe_flush()
                    if count % YIELD_EVERY == 0 or unyielded > YIELD_CHARS:
                        unyielded = 0
                        await asyncio.sleep(0)  # keys and scrolling stay live during a burst
                elif isinstance(event, Waiting):  # the client sleeps before a retry
                    self.status.set_activity(for_display(event.wait.describe()))
                    self.app.notify(event.wait.describe(), title="Waiting to retry",
                                    timeout=max(3.0, event.wait.seconds))
                elif isinstance(event, VariantSaved):
                    saved.append(variant_view(event.variant))
                    if event.note:
                        notes.append(event.note)
                elif isinstance(event, Failed):
                    failed.append(event.error)
                    if event.variant is not None:
                        saved.append(variant_view(event.variant))
        except asyncio.CancelledError:
            stopped = True
            if view is not None and view.id is not None and not saved:  # a streamed answer, kept as far as it got
                # as the service stored it: everything that arrived (this loop may not have taken it all yet);
                # closing the flow ends its stream and stores the answer now
                await events.aclose()
                stored = self._stored_variant(answer.turn_id, view.id)
                if stored is not None:
                    saved.append(variant_view(stored))
                else:
                    view.text, view.finish_reason = "".join(parts), "cancelled"
                    saved.append(view)
            raise
        finally:
            # Closed first: a stopped answer is in its turn before `answering` lets a regenerate start
            # (else it would find no answer to diversify from and retry instead, as strategy "first").
            await events.aclose()
            ticker.cancel()
            answer.busy = None
            if view is not None:
                answer.variants.remove(view)
            answer.variants.extend(saved)
            answer.index = max(0, len(answer.variants) - 1)
            self.status.set_activity("")
            answer.refresh_footer()  # the final figures, before the (maybe long) last render
            self.update_context()  # here, not after: a stopped answer counts too
            text = answer.current.text if answer.current else ""
            if stopped:
                # Stopped: the stop shows at once; the text that arrived is laid out after (a huge burst
                # takes seconds), by the body itself, so the next answer need not wait for it.
                body.finish_later(text)
            else:
                if body.written:
                    await flusher.flush()
                # one full parse of the whole answer: fixes half-open fences; an answer not streamed at all
                # (one burst) is rendered by that parse alone. By the body itself: Esc while a long answer is
                # laid out (it had all arrived) cancels only the waiting, and the answer still ends here.
                body.finish_later(text)
                try:
                    await body.finished()
                except asyncio.CancelledError:
                    stopped_late = True
            answer.streaming = False
            self.answering = False
            self.post_message(AnswerDone(answer, answer.current))
            self.call_after_refresh(collector.release)
            if stopped_late:
                raise asyncio.CancelledError
        for note in notes[:1]:
            self.app.notify(note, timeout=5)
        if failed and not saved:
            await self._notice(f"Failed: {failed[0]}")
        if len(saved) > 1:
            self.app.notify(f"{len(saved)} new variant(s) ({saved[-1].strategy}); {len(answer.variants)} in all.",
                            timeout=3)
        self.refresh_sidebar()
        if analyze and saved and not any(v.error for v in saved):
            self.measure(answer)

    def _stored_variant(self, turn_id, variant_id: int):
        """The service's variant `variant_id` of a turn (as it stored it), or None."""
        turn = self.service.turn(turn_id) if self.service else None
        return next((v for v in turn.variants if v.id == variant_id), None) if turn is not None else None

    # --- send to all (compare models) ----------------------------------------------------------

    def action_send_all(self) -> None:
        """The message in the input to every [compare] backend at once, side by side."""
        text = self.prompt.full_text
        names = self.app.settings.compare.backends
        if not names:
            self.app.notify("No models to compare: set [compare] backends = [\"local\", \"ollama\"] in the config.",
                            severity="warning", timeout=5)
            return
        if not text.strip():
            self.app.notify("Type the message to send to every model first.", timeout=3)
            return
        if self.answering or self.service is None:
            self.app.notify(f"An answer is still running: {self.key_for('cancel')} stops it first.",
                            severity="warning", timeout=3)
            return
        self.answering = True
        self._forget_sent_draft()
        self.run_worker(self._send_all(text, names), exclusive=True, group="answer")

    async def _send_all(self, text: str, names: list[str]) -> None:
        from ..diversity.crossmodel import model_label as compare_label

        n = self.app.settings.compare.n
        events = self.service.compare_turn(text, names, n)
        view = None
        ids: dict[int, int] = {}  # comparison index -> variant id
        try:
            first = await anext(events)
            if isinstance(first, NotSent):
                await self._notice(f"Not sent: this message is about {first.tokens:,} tokens, more than the "
                                   f"{first.window:,}-token context window of {first.backend}.")
                return
            view = CompareView(first.turn_id, id=f"compare-{first.turn_id}")
            await self._show_turn(first, view)
            view.badge.show_text(f"{len(names)} models · answering…", "pending")
            self.status.set_activity(f"answering ({len(names)} models)…")
            async for event in events:
                if isinstance(event, Started):
                    suffix = f" #{event.index % n + 1}" if n > 1 else ""
                    await view.add_pane(event.index, compare_label(event.backend, event.model) + suffix)
                elif isinstance(event, Delta):
                    view.pane(event.index).add(event.text)
                elif isinstance(event, (VariantSaved, Failed)):
                    pane = view.pane(event.index) or await view.add_pane(event.index, names[event.index // n])
                    pane.finish(event.variant, getattr(event, "error", None))
                    if event.variant is not None:
                        ids[event.index] = event.variant.id
        finally:
            self.answering = False
            self.status.set_activity("")
            await events.aclose()
            if view is not None:
                for pane in view.panes:
                    if pane.variant is None and not pane.has_class("-failed"):  # Esc: kept as far as it got
                        pane.finish(None, "stopped")
            self.refresh_sidebar()
        if view is not None and ids:
            self.measure_compare(view, [ids[i] for i in sorted(ids)])

    @work(exclusive=True, group="measure")
    async def measure_compare(self, view, ids: list[int | None]) -> None:
        """All the compared answers judged together; the badge says how many models said different things."""
        view.badge.show_text("judging across models…", "pending")
        if None in ids:  # stored while the history failed: no row yet to name them by
            view.badge.show_text("not judged: some answers are not in the history yet", "warn")
            return
        report = await self.service.measure(view.turn_id, ids)
        if report is None:
            return
        if report.cross_model:  # coloured by what the category wants: for A, models disagreeing is the warning
            report = dataclasses.replace(report, status=report.cross_model["status"],
                                         badge_text=report.cross_model["badge_text"])
        view.badge.show_text(report.badge_text, services.badge_status(report))

    @on(ComparePane.Chosen)
    def _compare_chosen(self, event: ComparePane.Chosen) -> None:
        event.stop()
        view = event.pane.parent.parent
        self.service.show_variant(view.turn_id, event.pane.variant_id)
        for pane in view.panes:
            pane.set_class(pane is event.pane, "-chosen")
        self.app.notify(f"Continuing from {for_display(event.pane.label)}'s answer.", timeout=3)
        self.prompt.area.focus()

    def action_cancel(self) -> None:
        if self.answering:
            self.workers.cancel_group(self, "answer")
            self.app.notify("Stopped; the partial answer is kept.", timeout=3)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel":
            return self.answering  # otherwise Esc goes on to close dialogs, minimize, etc.
        return True

    # --- regenerate, brainstorm, retry ---------------------------------------------------------

    def _last(self) -> tuple:
        """(turn, answer widget) of the last turn, or Nones."""
        turn = self.service.turn() if self.service else None
        return (turn, self.answer_for(turn.user.id)) if turn else (None, None)

    def _start_flow(self, what: str, activity: str, flow) -> None:
        """Run a regeneration flow on the last turn (flow(turn) gives its events) in the answer worker."""
        if self.answering:
            self.app.notify(f"An answer is still running: {self.key_for('cancel')} stops it first.",
                            severity="warning", timeout=3)
            return
        turn, answer = self._last()
        if turn is None or answer is None:
            self.app.notify(f"Nothing to {what} yet.", timeout=3)
            return
        self.answering = True
        answer.busy = activity  # from now on: not the figures of the variant shown before
        answer.refresh_footer()
        self.run_worker(self._regenerate(turn, answer, flow, activity), exclusive=True, group="answer")

    async def _regenerate(self, turn, answer: AssistantMessage, flow, activity: str) -> None:
        if turn.user.letter is None:
            self.status.set_activity("waiting for the category…")
        retry = not usable(turn.variants)  # the only answer failed: a retry, not a variant
        events = self.service.retry(turn.user.id) if retry else flow(turn)
        try:
            await self._show_flow(answer, events, activity, analyze=not retry)
        finally:
            self.answering, answer.busy = False, None  # also when the flow failed before it showed anything
            await events.aclose()

    def action_regenerate(self) -> None:
        strategy = self.app.strategy
        self._start_flow("regenerate", f"answering ({strategy})…",
                         lambda turn: self.service.regenerate(strategy, turn.user.id))

    def action_brainstorm(self) -> None:
        n = self.app.settings.regenerate.brainstorm_n
        strategy = self.app.strategy
        self._start_flow("brainstorm on", f"brainstorming {n} variants ({strategy})…",
                         lambda turn: self.service.regenerate(strategy, turn.user.id, n))

    def action_retry(self) -> None:
        turn, answer = self._last()
        if turn is None or answer is None or self.answering:
            return
        self.answering = True
        self.run_worker(self._retry(turn, answer), exclusive=True, group="answer")

    async def _retry(self, turn, answer: AssistantMessage) -> None:
        events = self.service.retry(turn.user.id)
        try:
            await self._show_flow(answer, events, "answering (first)…")
        finally:
            self.answering = False  # also when the flow failed before it showed anything
            await events.aclose()

    @on(AssistantMessage.Retry)
    def _retry_pressed(self, event: AssistantMessage.Retry) -> None:
        event.stop()
        if self.last_answer() is event.widget:
            self.action_retry()

    # --- categories ------------------------------------------------------------------------

    def _service_event(self, event) -> None:
        """What happens beside a flow: a turn's category, a diversity measurement."""
        if isinstance(event, Classified):
            self._paint_chip(event.turn_id)
        elif isinstance(event, Measuring):
            answer = self.answer_for(event.turn_id)
            if answer is not None:
                answer.show_badge(services.pending_badge(event.quick), "pending")
        elif isinstance(event, Measured):
            answer = self.answer_for(event.turn_id)
            if answer is not None:
                answer.show_badge(services.badge_label(event.report), services.badge_status(event.report))
                self.post_message(BadgeDone(answer, event.report))
        elif isinstance(event, Failed) and event.stage == "measure":
            answer = self.answer_for(event.turn_id)
            if answer is not None:
                answer.show_badge(f"diversity failed: {event.error}", "bad")
        elif isinstance(event, Failed) and event.stage == "classify":
            self.app.notify(for_display(f"classification failed: {event.error}"), severity="warning")
        elif isinstance(event, StoreProblem):  # lost: writes given up; else kept in memory and retried
            self.app.notify(for_display(f"not saved in the history: {event.error}" if event.lost else
                                        f"not saved in the history for now (kept, retrying): {event.error}"),
                            severity="error", timeout=30)
        elif isinstance(event, StoreRecovered):
            self.app.notify("Saved in the history again; nothing was lost.", timeout=10)

    def _paint_chip(self, turn_id: int) -> None:
        user = self.user_for(turn_id)
        turn = self.service.turn(turn_id) if self.service else None
        if user is None or turn is None:
            return
        user.chip.set_category(turn.user.letter or taxonomy.OTHER, turn.user.override is not None)
        found = turn.user.category or {}
        how = ", ".join(str(x) for x in (found.get("method"), found.get("detail")) if x)
        user.chip.tooltip = Content(for_display(  # the detail holds the classifier model's own words
            f"category {user.chip.letter}" + (" (set by you)" if turn.user.override else "")
            + (f"; classifier: {found.get('letter')} {how}" if found else "")
            + f" · click or {self.key_for('pick_category')} to change"))

    def action_pick_category(self) -> None:
        turn, _ = self._last()
        if turn is not None:
            self._open_picker(turn.user.id)

    @on(CategoryChip.Pressed)
    def _chip_pressed(self, event: CategoryChip.Pressed) -> None:
        event.stop()
        self._open_picker(event.turn_id)

    def _open_picker(self, turn_id: int) -> None:
        from .screens.dialogs import CategoryPicker

        turn = self.service.turn(turn_id)
        current = turn.user.letter if turn else None

        def picked(letter: str | None) -> None:
            if letter is None:
                return
            self.service.set_override(turn_id, letter)
            category = taxonomy.get(letter)
            name = f"{category.letter} {category.name}" if category else "other"
            self.app.notify(f"Category set to {name}; the next regenerate uses it.", timeout=3)

        self.app.push_screen(CategoryPicker(current), picked)

    # --- variants and branches -------------------------------------------------------------------

    def action_variant(self, step: int) -> None:
        answer = self.last_answer()
        if answer is not None:
            self.navigate(answer, step)

    @on(AssistantMessage.Navigate)
    def _navigate(self, event: AssistantMessage.Navigate) -> None:
        event.stop()
        self.navigate(event.widget, event.step)

    @work(exclusive=True, group="navigate")
    async def navigate(self, answer: AssistantMessage, step: int) -> None:
        if answer.streaming:
            return
        index = answer.index + step
        if not 0 <= index < len(answer.variants):
            return
        self.service.show_variant(answer.turn_id, answer.variants[index].stored_id)
        await answer.show(index)
        # What follows this answer is the branch that continues from the shown variant.
        await self._rerender_after(answer)
        self.update_context()

    async def _rerender_after(self, answer: AssistantMessage) -> None:
        turns = self.service.turns
        children = list(self.chat.children)
        position = children.index(answer)
        old = children[position + 1:]
        if old:
            await self.chat.remove_children(old)
        ids = [t.user.id for t in turns]
        if answer.turn_id in ids:
            widgets = []
            for turn in turns[ids.index(answer.turn_id) + 1:]:
                widgets += self._turn_widgets(turn)
            if widgets:
                await self.chat.mount_all(widgets)
        self.prompt.area.sent_history = [t.user.text for t in turns]

    # --- diversity badge ---------------------------------------------------------------------

    @work(exclusive=True, group="measure")
    async def measure(self, answer: AssistantMessage) -> None:
        """Generic metrics first (seconds), then the judge's functional verdict (Measuring, Measured events);
        async, so a newer regenerate cancels it."""
        if not services.models_ready():
            answer.show_badge("warming up models…", "pending")
        await self.service.measure(answer.turn_id)

    @on(Badge.Pressed)
    def _badge_pressed(self, event: Badge.Pressed) -> None:
        event.stop()
        self.show_detail(event.turn_id)

    def action_badge_detail(self) -> None:
        turn = self.service.turn() if self.service else None  # the last turn: an answer or a comparison
        if turn is not None:
            self.show_detail(turn.user.id)

    def show_detail(self, turn_id: int) -> None:
        from .screens.diversity import DetailScreen

        turn = self.service.turn(turn_id) if self.service else None
        if turn is None:
            return
        report = services.report_from_variants(turn.variants)
        if report is None:
            self.app.notify(f"No diversity report yet: regenerate ({self.key_for('regenerate')}) to get one.",
                            timeout=3)
            return
        self.app.push_screen(DetailScreen(turn, report))

    def action_homogenization(self) -> None:
        from .screens.diversity import HomogenizationScreen

        if self.conversation_id is None:
            self.app.notify("No conversation yet.", timeout=3)
            return
        conv = self.service.reload()
        answer = self.last_answer()
        self.app.push_screen(HomogenizationScreen(conv, answer.turn_id if answer else None,
                                                  self.app.store.cross_model_results()))

    # --- clipboard ------------------------------------------------------------------------------

    def action_copy_answer(self) -> None:
        answer = self.last_answer()
        if answer is not None:
            self._copy(answer, code=False)

    def action_copy_code(self) -> None:
        answer = self.last_answer()
        if answer is not None:
            self._copy(answer, code=True)

    @on(AssistantMessage.Copy)
    def _copy_requested(self, event: AssistantMessage.Copy) -> None:
        event.stop()
        self._copy(event.widget, event.code)

    def _copy(self, answer: AssistantMessage, code: bool) -> None:
        # what is shown is what is copied: escape sequences pasted into a shell are as dangerous as printed
        text = for_display(answer.current.text) if answer.current else ""
        if not code:
            self._to_clipboard(text, "answer")
            return
        blocks = code_blocks(text)
        if not blocks:
            self.app.notify("This answer has no code block.", timeout=3)
        elif len(blocks) == 1:
            self._to_clipboard(blocks[0], "code block")
        else:
            from .screens.dialogs import ChoiceList

            previews = [f"{i + 1}: " + (b.strip().splitlines() or [""])[0][:70] for i, b in enumerate(blocks)]

            def picked(index: int | None) -> None:
                if index is not None:
                    self._to_clipboard(blocks[index], f"code block {index + 1}")

            self.app.push_screen(ChoiceList("Copy which code block?", previews), picked)

    def _to_clipboard(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Copied the {what} ({len(text):,} characters).", timeout=2)

    # --- sidebar actions -------------------------------------------------------------------------

    def action_toggle_sidebar(self) -> None:
        self.sidebar.toggle_class("-hidden")

    def action_search(self) -> None:
        self.sidebar.remove_class("-hidden")
        self.sidebar.query_one("#search", Input).focus()

    def action_focus_input(self) -> None:
        self.prompt.area.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_sidebar()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        view = self.sidebar.list_view
        view.focus()
        if view.children and view.index is None:
            view.index = 0

    @on(Sidebar.Open)
    async def _open(self, event: Sidebar.Open) -> None:
        event.stop()
        if self.answering:
            self.app.notify(f"An answer is still running: {self.key_for('cancel')} stops it first.",
                            severity="warning", timeout=3)
            return
        await self.open_conversation(event.conversation_id)
        self.refresh_sidebar()
        self.prompt.area.focus()

    @on(Sidebar.Action)
    def _sidebar_action(self, event: Sidebar.Action) -> None:
        event.stop()
        if event.action == "new":
            self.action_new_conversation()
        elif event.action == "rename":
            self._rename(event.conversation_id)
        elif event.action == "delete":
            self._delete(event.conversation_id)
        elif event.action == "undo_delete":
            self.undo_delete()

    def action_new_conversation(self) -> None:
        if self.answering:
            self.app.notify(f"An answer is still running: {self.key_for('cancel')} stops it first.",
                            severity="warning", timeout=3)
            return
        self.run_worker(self._new(), exclusive=True, group="open")

    async def _new(self) -> None:
        await self.open_conversation(None)
        self.refresh_sidebar()
        self.prompt.area.focus()

    def action_rename(self) -> None:
        self._rename(self.conversation_id)

    def _rename(self, conversation_id: int | None) -> None:
        from .screens.dialogs import TextPrompt

        if conversation_id is None:
            return
        current = next((s.title for s in self.app.store.list_conversations(limit=500) if s.id == conversation_id), "")

        def renamed(title: str | None) -> None:
            if not title:
                return
            if not self._write(self.app.store.rename, conversation_id, title):
                return
            if conversation_id == self.conversation_id:
                self.sub_title = for_display(title)
            self.refresh_sidebar()

        self.app.push_screen(TextPrompt("Rename conversation", current), renamed)

    def action_delete(self) -> None:
        self._delete(self.conversation_id)

    def _delete(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        if not self._write(self.app.store.delete, conversation_id):
            return
        self._last_deleted = conversation_id
        keys = keys_for_id(self.app, "undo_delete")
        self.app.notify(f"Conversation deleted. Undo: {keys} in the conversation list, or the palette.", timeout=6)
        if conversation_id == self.conversation_id:
            self.run_worker(self._new(), exclusive=True, group="open")
        else:
            self.refresh_sidebar()

    def undo_delete(self) -> None:
        if self._last_deleted is None:
            return
        if not self._write(self.app.store.undo_delete, self._last_deleted):
            return
        self.app.notify("Conversation restored.", timeout=3)
        self._last_deleted = None
        self.refresh_sidebar()

    def action_export(self, fmt: str = "markdown") -> None:
        from .screens.dialogs import ExportPrompt

        conversation_id = self.conversation_id
        if conversation_id is None:
            self.app.notify("Nothing to export yet.", timeout=3)
            return
        folder = data_dir() / "exports"
        default = services.default_export_path(self.app.store, conversation_id, fmt, folder)

        def exported(path) -> None:  # the written path, or None when cancelled
            if path is not None:
                self.app.notify(f"Exported to {for_display(str(path))}", title="Export", timeout=8)

        self.app.push_screen(ExportPrompt(default, lambda path: services.export(
            self.app.store, conversation_id, path, folder)), exported)

    # --- drafts, context -------------------------------------------------------------------------

    @on(TextArea.Changed, "#prompt")
    def _typing(self, event: TextArea.Changed) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
        self._draft_timer = self.set_timer(DRAFT_DELAY, self._save_draft_now)

    def _forget_sent_draft(self) -> None:
        """A draft save still pending for the text being sent would store it again: drop it."""
        if self._draft_timer is not None:
            self._draft_timer.stop()
            self._draft_timer = None

    def _save_draft_now(self) -> None:
        store = self.app.store
        bars = self.query(PromptBar)
        if store is not None and bars and self._draft_restored:
            self._write(store.save_draft, self.conversation_id, bars.first().full_text)

    def _write(self, write, *args) -> bool:
        """A store write the user asked for (draft, rename, delete): a locked or read-only database is told
        in a notification, never a crash; the text stays in the input."""
        try:
            write(*args)
            return True
        except store_errors() as exc:
            self.app.notify(for_display(f"Not saved: {exc}"), severity="error", timeout=6)
            return False

    @work(exclusive=True, group="context")
    async def update_context(self) -> None:
        """The tokens the shown path takes (counted in a thread: the tokenizer may still be loading)."""
        if self.service is None:
            return
        window = self.app.backend_config.context_window
        used = await asyncio.to_thread(count_tokens, self.service.history(), window)
        self.status.set_context(used, window)


class AnswerDone(Message):
    """Posted when an answer has finished streaming and is fully rendered (tests, benchmarks)."""

    def __init__(self, answer: AssistantMessage, variant: VariantView) -> None:
        super().__init__()
        self.answer = answer
        self.variant = variant


class BadgeDone(Message):
    """Posted when the functional verdict of a badge is in."""

    def __init__(self, answer: AssistantMessage, report) -> None:
        super().__init__()
        self.answer = answer
        self.report = report
