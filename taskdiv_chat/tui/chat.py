"""The chat screen: conversation, input, sidebar, status bar, and every chat flow.

The flows only call the core (store, backends, classify, diversity); the
heavy core modules are imported inside workers, after the first paint.
"""

from __future__ import annotations

import asyncio
import time

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TextArea
from textual.worker import get_current_worker

from .. import config, taxonomy
from ..capability import capability_hint
from ..config import data_dir
from ..sanitize import for_display
from . import bindings, services
from .state import load_state, save_state
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
RESERVE_TOKENS = 256  # room kept for the answer when checking the context window


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
                       error=variant.error, strategy=variant.strategy)


class ChatScreen(Screen):
    BINDINGS = bindings.CHAT

    def __init__(self) -> None:
        super().__init__()
        self.conversation_id: int | None = None
        self.backend = None  # created after the first paint
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
        from ..backends import make_backend

        self.backend = make_backend(self.app.settings, self.app.backend_name)
        from ..store import StoreError

        try:
            self.app.open_store()
        except StoreError as exc:  # a damaged or newer database: say so, touch nothing
            self.app.exit(return_code=2, message=for_display(f"taskdiv-chat: {exc}"))
            return
        if self.app.warm_up:
            self.warm_up()
        wanted = None if self.app.new_chat else (self.app.start_conversation_id or load_state().get("last_conversation"))
        await self.open_conversation(wanted)
        self.refresh_sidebar()

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
        conv = None
        if conversation_id is not None:
            try:
                conv = store.load_conversation(conversation_id)
            except KeyError:
                conv = None
        self.conversation_id = conv.id if conv else None
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
        for turn in conv.turns if conv else []:
            if turn.user.letter is None:
                self.classify_turn(turn.user.id, turn.user.text)

    def _welcome(self) -> Content:
        lines = ["Type a message and press Enter.",
                 "Every message gets a task category (the chip); ctrl+r regenerates with the strategy of that "
                 "category and the badge tells whether the new answer is functionally new.",
                 "F1 keys · ctrl+p every action · ctrl+b conversations"]
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

    def _answers(self) -> list[AssistantMessage]:
        return list(self.chat.query(AssistantMessage))

    def last_answer(self) -> AssistantMessage | None:
        answers = self._answers()
        return answers[-1] if answers else None

    def answer_for(self, turn_id) -> AssistantMessage | None:
        for answer in self._answers():
            if answer.turn_id == turn_id:
                return answer
        return None

    def user_for(self, turn_id) -> UserMessage | None:
        for user in self.chat.query(UserMessage):
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
            self.app.notify("An answer is still running: Esc stops it. Your message stays in the input.",
                            severity="warning", timeout=4)
            return
        self.send(text)

    @work(exclusive=True, group="send")
    async def send(self, text: str) -> None:
        store = self.app.store
        if store is None or self.backend is None:
            self.app.notify("Still starting, try again in a moment.", timeout=3)
            return
        last = self.last_answer()
        parent = last.current.id if last and last.current else None
        history = [] if self.conversation_id is None else store.history_messages(self.conversation_id)
        messages = history + [{"role": "user", "content": text}]
        window = self.app.backend_config.context_window
        fits, used, kept = await asyncio.to_thread(services.fit_context, messages, window, RESERVE_TOKENS)
        if not fits:
            await self._notice(f"Not sent: this message is about {used:,} tokens, more than the {window:,}-token "
                               f"context window of {self.app.backend_name} (it stays in the input). "
                               f"Shorten it or use a backend with a larger context_window.")
            return
        self._forget_sent_draft()
        if self.conversation_id is None:
            store.save_draft(None, "")  # the new chat's draft was this message: ctrl+n must not bring it back
            self.conversation_id = store.create_conversation(services.title_for(text))
            self.sidebar.current_id = self.conversation_id
            save_state(last_conversation=self.conversation_id)
            self.sub_title = for_display(services.title_for(text))
        turn_id = store.add_user_turn(self.conversation_id, text, parent)
        self.prompt.clear()
        self.prompt.area.remember(text)
        store.save_draft(self.conversation_id, "")
        if (empty := self.chat.query("#empty")):
            await empty.remove()
        user = UserMessage(turn_id, text, None, id=f"user-{turn_id}")
        answer = AssistantMessage(turn_id, [], is_local=self.is_local, id=f"answer-{turn_id}")
        await self.chat.mount_all([user, answer])
        self.chat.anchor()
        self.refresh_sidebar()
        self.classify_turn(turn_id, text)
        if len(kept) < len(messages):
            self.app.notify(f"{len(messages) - len(kept)} older message(s) left out to fit the context window.",
                            timeout=5)
        self.run_answer(answer, kept, strategy="first")

    async def _notice(self, text: str) -> None:
        await self.chat.mount(Notice(Content(for_display(text))))
        self.chat.scroll_end(animate=False)

    # --- streaming ---------------------------------------------------------------------------

    @work(exclusive=True, group="answer")
    async def run_answer(self, answer: AssistantMessage, messages: list[dict], strategy: str,
                         analyze: bool = False) -> None:
        """Stream one answer into `answer` as a new variant, then (regenerations) measure diversity."""
        store, backend = self.app.store, self.backend
        writer = store.start_variant(answer.turn_id, strategy=strategy, backend=backend.name, model=backend.model,
                                     params={})
        view = VariantView(id=writer.variant_id, text="", backend=backend.name, model=backend.model,
                           strategy=strategy)
        self.answering = True
        answer.streaming = True
        await answer.add_variant(view)
        if analyze:
            answer.badge.show_text("…", "pending")
        body = answer.body
        parts: list[str] = []
        flusher = StreamFlusher(body)
        ticker = asyncio.create_task(flusher.tick())  # lets held text out while the stream stalls
        started = time.monotonic()
        first_token = None
        finish, usage, error = None, None, None
        count, unyielded = 0, 0
        self.status.set_activity(f"answering ({strategy})…")
        try:
            async for chunk in backend.stream(messages):
                if (wait := getattr(chunk, "wait", None)) is not None:  # the client sleeps before a retry
                    self.status.set_activity(for_display(wait.describe()))
                    self.app.notify(wait.describe(), title="Waiting to retry", timeout=max(3.0, wait.seconds))
                if chunk.text:
                    if first_token is None:
                        first_token = time.monotonic() - started
                        self.status.set_activity(f"answering ({strategy})…")
                    parts.append(chunk.text)
                    flusher.add(chunk.text)
                    writer.append(chunk.text)
                finish = chunk.finish_reason or finish
                usage = chunk.usage or usage
                count += 1
                unyielded += len(chunk.text)
                await flusher.maybe_flush()
                if count % YIELD_EVERY == 0 or unyielded > YIELD_CHARS:
                    unyielded = 0
                    await asyncio.sleep(0)  # keys and scrolling stay live during a burst
        except asyncio.CancelledError:
            finish = "cancelled"
            raise
        except Exception as exc:  # a BackendError's message is written for the user
            finish, error = "error", str(exc) or type(exc).__name__
            if not parts and getattr(exc, "partial", ""):
                parts.append(exc.partial)
                writer.append(exc.partial)  # stored too, not only shown
        finally:
            ticker.cancel()
            text = "".join(parts)
            total = time.monotonic() - started
            usage_dict = ({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                          if usage else None)
            writer.finish(finish or "stop", usage_dict, {"first_token_s": first_token, "total_s": total}, error=error)
            view.text = text
            view.tokens = usage.completion_tokens if usage else None
            view.seconds = total
            view.finish_reason = finish if finish not in (None, "stop") else None
            view.error = error
            answer.streaming = False
            self.answering = False
            self.status.set_activity("")
            answer.refresh_footer()  # the final figures, before the (maybe long) last render
            self.update_context()  # here, not after: a stopped answer counts too
            if body.written:
                await flusher.flush()
            # one full parse of the whole answer: fixes half-open fences; an answer not streamed at all
            # (one burst) is rendered by that parse alone
            await body.finish(text)
            self.post_message(AnswerDone(answer, view))
        if analyze and not error:
            self.measure(answer)

    def action_cancel(self) -> None:
        if self.answering:
            self.workers.cancel_group(self, "answer")
            self.app.notify("Stopped; the partial answer is kept.", timeout=3)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel":
            return self.answering  # otherwise Esc goes on to close dialogs, minimize, etc.
        return True

    # --- regenerate, brainstorm, retry ---------------------------------------------------------

    def _last_turn(self):
        """(conversation, turn, answer widget) of the last turn, or Nones."""
        if self.conversation_id is None:
            return None, None, None
        conv = self.app.store.load_conversation(self.conversation_id)
        if not conv.turns:
            return conv, None, None
        turn = conv.turns[-1]
        return conv, turn, self.answer_for(turn.user.id)

    def action_regenerate(self) -> None:
        self.regenerate()

    @work(exclusive=True, group="regen")
    async def regenerate(self) -> None:
        if self.answering:
            self.app.notify("An answer is still running: Esc stops it first.", severity="warning", timeout=3)
            return
        conv, turn, answer = self._last_turn()
        if turn is None or answer is None:
            self.app.notify("Nothing to regenerate yet.", timeout=3)
            return
        usable = services.usable_variants(turn.variants)
        if not usable:  # the only answer failed: a retry, not a variant
            await self._retry(turn, answer)
            return
        letter = await self._category_of(turn)
        strategy = self.app.strategy
        history = self.app.store.history_messages(self.conversation_id, upto_turn_id=turn.user.id)
        if services.asks_k_at_once(strategy):  # a k-at-once prompt for k=1: split like a brainstorm
            self.run_brainstorm(answer, turn, history, letter, 1)
            return
        messages, note = services.regeneration(strategy, history, [v.text for v in usable], letter,
                                               self.app.backend_config)
        if note:
            self.app.notify(note, timeout=5)
        self.run_answer(answer, messages, strategy=strategy, analyze=True)

    def action_retry(self) -> None:
        self.retry()

    @work(exclusive=True, group="regen")
    async def retry(self) -> None:
        conv, turn, answer = self._last_turn()
        if turn is None or answer is None or self.answering:
            return
        await self._retry(turn, answer)

    async def _retry(self, turn, answer: AssistantMessage) -> None:
        history = self.app.store.history_messages(self.conversation_id, upto_turn_id=turn.user.id)
        self.run_answer(answer, history, strategy="first")

    @on(AssistantMessage.Retry)
    def _retry_pressed(self, event: AssistantMessage.Retry) -> None:
        event.stop()
        if self.last_answer() is event.widget:
            self.retry()

    def action_brainstorm(self) -> None:
        self.brainstorm()

    @work(exclusive=True, group="regen")
    async def brainstorm(self) -> None:
        """Several variants at once (a writer's "give me n more"), each saved as a variant, then measured."""
        if self.answering:
            self.app.notify("An answer is still running: Esc stops it first.", severity="warning", timeout=3)
            return
        conv, turn, answer = self._last_turn()
        if turn is None or answer is None:
            self.app.notify("Nothing to brainstorm on yet.", timeout=3)
            return
        letter = await self._category_of(turn)
        path = self.app.store.history_messages(self.conversation_id, upto_turn_id=turn.user.id)
        self.run_brainstorm(answer, turn, path, letter, self.app.settings.regenerate.brainstorm_n)

    @work(exclusive=True, group="answer")
    async def run_brainstorm(self, answer: AssistantMessage, turn, path: list[dict], letter: str, n: int) -> None:
        store, backend, strategy = self.app.store, self.backend, self.app.strategy
        earlier = [v.text for v in services.usable_variants(turn.variants)]
        self.answering = answer.streaming = True
        self.status.set_activity(f"brainstorming {n} variants ({strategy})…")
        answer.busy = f"brainstorming {n} variants ({strategy})…"  # not the figures of the variant shown before
        answer.refresh_footer()
        answer.badge.show_text(f"brainstorming {n}…", "pending")
        await answer.body.begin()  # a live preview of the text as it is generated
        pending: list[str] = []
        current = [0]

        def on_text(index: int, delta: str) -> None:
            if index != current[0]:
                current[0] = index
                pending.append("\n\n---\n\n")
            pending.append(delta)

        async def preview() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY)
                if pending:
                    text = "".join(pending)
                    pending.clear()
                    await answer.body.write(text)

        previewer = asyncio.create_task(preview())
        results = []
        try:
            started = time.monotonic()
            results = await services.brainstorm(backend, strategy, path, earlier, letter, n, on_text)
        except asyncio.CancelledError:
            self.app.notify("Brainstorm stopped; no new variant was kept.", timeout=3)
            raise
        except Exception as exc:
            await self._notice(f"Brainstorm failed: {exc}")
        finally:
            previewer.cancel()
            await answer.body.stop()
            for result in results:
                completion = result.completion
                usage = completion.as_dict()["usage"]
                writer = store.start_variant(turn.user.id, strategy=strategy, backend=backend.name,
                                             model=backend.model, params={"brainstorm": n})
                writer.append(result.text)
                writer.finish(completion.finish_reason or "stop", usage,
                              {"first_token_s": completion.first_token_s, "total_s": completion.total_s})
                answer.variants.append(VariantView(
                    id=writer.variant_id, text=result.text, backend=backend.name, model=backend.model,
                    tokens=usage["completion_tokens"] if usage else None, seconds=completion.total_s,
                    strategy=strategy))
            answer.streaming, answer.busy = False, None
            self.status.set_activity("")
            await answer.show(len(answer.variants) - 1)
            self.answering = False  # once the footer shows the new variant
            if results:
                self.app.notify(f"{len(results)} new variant(s) ({strategy}); {len(answer.variants)} in all.",
                                timeout=3)
        if results:
            self.measure(answer)

    # --- categories ------------------------------------------------------------------------

    @work(group="classify")
    async def classify_turn(self, turn_id: int, text: str) -> None:
        """Classify (the model's request is async, the local classifier works in a thread), then paint the chip."""
        store = self.app.store
        previous, context = None, []
        if self.conversation_id:
            context = store.history_messages(self.conversation_id, upto_turn_id=turn_id)[:-1]
            turns = store.load_conversation(self.conversation_id).turns
            ids = [t.user.id for t in turns]
            if turn_id in ids and ids.index(turn_id) > 0:
                previous = turns[ids.index(turn_id) - 1].user.category

        def early(category: dict) -> None:  # the local answer, while the model is still thinking
            store.set_category(turn_id, category)
            self._paint_chip(turn_id)

        try:
            category = await services.classify(text, self.app.settings, self.app.backend_name, previous, context,
                                               early)
        except Exception as exc:
            self.app.notify(f"classification failed: {exc}", severity="warning")
            category = {"letter": taxonomy.OTHER, "confidence": 0.0, "method": "failed", "detail": str(exc)}
        store.set_category(turn_id, category)
        self._paint_chip(turn_id)

    def _paint_chip(self, turn_id: int) -> None:
        user = self.user_for(turn_id)
        if user is None or self.conversation_id is None:
            return
        turn = services.find_turn(self.app.store, self.conversation_id, turn_id)
        if turn is not None:
            user.chip.set_category(turn.user.letter or taxonomy.OTHER, turn.user.override is not None)
            found = turn.user.category or {}
            how = ", ".join(str(x) for x in (found.get("method"), found.get("detail")) if x)
            user.chip.tooltip = Content(for_display(  # the detail holds the classifier model's own words
                f"category {user.chip.letter}" + (" (set by you)" if turn.user.override else "")
                + (f"; classifier: {found.get('letter')} {how}" if found else "") + " · click or ctrl+t to change"))

    async def _category_of(self, turn) -> str:
        """The letter regenerate uses: the override, else the classifier's (waited for if still running)."""
        for _ in range(600):  # at most ~60 s for a classifier still loading
            fresh = services.find_turn(self.app.store, self.conversation_id, turn.user.id)
            if fresh is not None and fresh.user.letter:
                return fresh.user.letter
            if _ == 0:
                self.status.set_activity("waiting for the category…")
            await asyncio.sleep(0.1)
        return taxonomy.OTHER

    def action_pick_category(self) -> None:
        conv, turn, _ = self._last_turn()
        if turn is not None:
            self._open_picker(turn.user.id)

    @on(CategoryChip.Pressed)
    def _chip_pressed(self, event: CategoryChip.Pressed) -> None:
        event.stop()
        self._open_picker(event.turn_id)

    def _open_picker(self, turn_id: int) -> None:
        from .screens.dialogs import CategoryPicker

        turn = services.find_turn(self.app.store, self.conversation_id, turn_id)
        current = turn.user.letter if turn else None

        def picked(letter: str | None) -> None:
            if letter is None:
                return
            self.app.store.set_category_override(turn_id, letter)
            self._paint_chip(turn_id)
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
        self.app.store.set_active_variant(answer.turn_id, answer.variants[index].id)
        await answer.show(index)
        # What follows this answer is the branch that continues from the shown variant.
        await self._rerender_after(answer)
        self.update_context()

    async def _rerender_after(self, answer: AssistantMessage) -> None:
        conv = self.app.store.load_conversation(self.conversation_id)
        children = list(self.chat.children)
        position = children.index(answer)
        old = children[position + 1:]
        if old:
            await self.chat.remove_children(old)
        ids = [t.user.id for t in conv.turns]
        if answer.turn_id in ids:
            widgets = []
            for turn in conv.turns[ids.index(answer.turn_id) + 1:]:
                widgets += self._turn_widgets(turn)
            if widgets:
                await self.chat.mount_all(widgets)
        self.prompt.area.sent_history = [t.user.text for t in conv.turns]

    # --- diversity badge ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="measure")
    def measure(self, answer: AssistantMessage) -> None:
        """Generic metrics first (seconds), then the judge's functional verdict; the UI stays live."""
        store, turn_id = self.app.store, answer.turn_id
        turn = services.find_turn(store, self.conversation_id, turn_id)
        if turn is None:
            return
        variants = services.usable_variants(turn.variants)
        if len(variants) < 2:
            return
        worker = get_current_worker()

        def call(fn, *args):  # a newer measurement (another regenerate) supersedes this one
            if not worker.is_cancelled:
                self.app.call_from_thread(fn, *args)

        if not services.models_ready():
            call(answer.badge.show_text, "warming up models…", "pending")
        try:
            quick = services.quick(variants)
            call(answer.badge.show_text, services.pending_badge(quick), "pending")
            report = services.analyze(turn, variants, self.app.settings, self.app.backend_name)
        except Exception as exc:
            call(answer.badge.show_text, f"diversity failed: {exc}", "bad")
            return
        if worker.is_cancelled:
            return
        store.save_metrics(variants[-1].id, services.report_dict(report))
        call(answer.badge.show_text, services.badge_label(report), services.badge_status(report))
        call(self.post_message, BadgeDone(answer, report))

    @on(Badge.Pressed)
    def _badge_pressed(self, event: Badge.Pressed) -> None:
        event.stop()
        self.show_detail(event.turn_id)

    def action_badge_detail(self) -> None:
        answer = self.last_answer()
        if answer is not None:
            self.show_detail(answer.turn_id)

    def show_detail(self, turn_id: int) -> None:
        from .screens.diversity import DetailScreen

        turn = services.find_turn(self.app.store, self.conversation_id, turn_id)
        if turn is None:
            return
        report = services.report_from_variants(turn.variants)
        if report is None:
            self.app.notify("No diversity report yet: regenerate (ctrl+r) to get one.", timeout=3)
            return
        self.app.push_screen(DetailScreen(turn, report))

    def action_homogenization(self) -> None:
        from .screens.diversity import HomogenizationScreen

        if self.conversation_id is None:
            self.app.notify("No conversation yet.", timeout=3)
            return
        conv = self.app.store.load_conversation(self.conversation_id)
        answer = self.last_answer()
        self.app.push_screen(HomogenizationScreen(conv, answer.turn_id if answer else None))

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
            self.app.notify("An answer is still running: Esc stops it first.", severity="warning", timeout=3)
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
            self.app.notify("An answer is still running: Esc stops it first.", severity="warning", timeout=3)
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
            self.app.store.rename(conversation_id, title)
            if conversation_id == self.conversation_id:
                self.sub_title = for_display(title)
            self.refresh_sidebar()

        self.app.push_screen(TextPrompt("Rename conversation", current), renamed)

    def action_delete(self) -> None:
        self._delete(self.conversation_id)

    def _delete(self, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        self.app.store.delete(conversation_id)
        self._last_deleted = conversation_id
        keys = bindings.keys_for(bindings.SIDEBAR[2], self.app._keymap)
        self.app.notify(f"Conversation deleted. Undo: {keys} in the conversation list, or the palette.", timeout=6)
        if conversation_id == self.conversation_id:
            self.run_worker(self._new(), exclusive=True, group="open")
        else:
            self.refresh_sidebar()

    def undo_delete(self) -> None:
        if self._last_deleted is None:
            return
        self.app.store.undo_delete(self._last_deleted)
        self.app.notify("Conversation restored.", timeout=3)
        self._last_deleted = None
        self.refresh_sidebar()

    def action_export(self, fmt: str = "markdown") -> None:
        if self.conversation_id is None:
            self.app.notify("Nothing to export yet.", timeout=3)
            return
        try:
            path = services.export(self.app.store, self.conversation_id, fmt, data_dir() / "exports")
        except OSError as exc:
            self.app.notify(f"Export failed: {exc}", title="Export", severity="error", timeout=8)
            return
        self.app.notify(f"Exported to {path}", title="Export", timeout=8)

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
            store.save_draft(self.conversation_id, bars.first().full_text)

    @work(thread=True, exclusive=True, group="context")
    def update_context(self) -> None:
        store = self.app.store
        if store is None:
            return
        history = store.history_messages(self.conversation_id) if self.conversation_id else []
        used = services.count_tokens(history)
        self.app.call_from_thread(self.status.set_context, used, self.app.backend_config.context_window)


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
