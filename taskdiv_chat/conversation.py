"""One home for a turn: the conversation service the CLI and the TUI both drive.

A ConversationService owns, for one conversation at a time, the store, the chat
backends (one client per backend, made on first use, closed with the service)
and the diversity judge (likewise), and keeps the conversation's active path in
memory, so an Enter costs one write and no full read. It runs every flow once:
send, retry, regenerate, brainstorm, measure and compare. Each flow is an async
generator of typed events (Started, Delta, VariantSaved, Failed); what happens
beside a flow (the turn's category, a diversity measurement) goes to the
listeners as Classified, Measuring and Measured events. A turn's category is
awaited (`category`), never polled. The answers never wait for the history: when
the store fails (locked, read-only, a full disk) the listeners are told once
(StoreProblem), the flows go on, and every write that could not be done is kept in
memory, in order, and retried with a backoff until the store works again (then
StoreRecovered, once). Only writes still waiting when the service closes are lost,
and that is told too. Everything here is
cancellable: cancelling the task that iterates a flow stops its streams, keeps
what was streamed and records the answer as cancelled.

No textual here: the core never imports the UI.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Union

from . import taxonomy
from .backends.base import Backend, Completion, collect
from .config import Settings
from .tokens import answer_reserve

def title_for(text: str) -> str:
    line = " ".join(text.split())
    return line[:60] + ("…" if len(line) > 60 else "") or "New chat"


def usable(variants) -> list:
    """Answers that count for regeneration and diversity: some text and no error."""
    return [v for v in variants if v.text.strip() and not v.error]


def judged(turn, variant_ids: list[int] | None = None) -> list:
    """The answers `measure` judges, in the report's order: a turn's usable ones, or those of `variant_ids`
    in the order given (a comparison's, backend by backend, whichever answer arrived first)."""
    variants = usable(turn.variants) if turn else []
    if variant_ids is None:
        return variants
    by_id = {v.id: v for v in variants if v.id is not None}  # (an answer not saved yet has no id to name it)
    return [by_id[i] for i in variant_ids if i in by_id]


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnAdded:
    """The user's message is stored (a new conversation was created for it when `new_conversation`)."""
    conversation_id: int
    turn_id: int
    text: str
    new_conversation: bool
    dropped: int  # older messages left out to fit the context window


@dataclass(frozen=True)
class NotSent:
    """The message does not fit the backend's context window; nothing was stored."""
    tokens: int
    window: int
    backend: str


@dataclass(frozen=True)
class Started:
    """An answer begins (index: its place in a brainstorm or compare, 0 otherwise)."""
    turn_id: int
    index: int
    backend: str
    model: str
    strategy: str
    variant_id: int | None  # streamed answers are stored as they arrive; generated ones when complete


@dataclass(frozen=True)
class Delta:
    turn_id: int
    index: int
    text: str


@dataclass(frozen=True)
class Waiting:
    """The client waits before asking again (wait: a backends.base.RetryWait, with describe())."""
    turn_id: int
    index: int
    wait: object


@dataclass(frozen=True)
class VariantSaved:
    """A finished answer is stored as a variant of its turn (variant: a store.Variant)."""
    turn_id: int
    index: int
    variant: object
    note: str = ""  # what the strategy had to leave out, for the user
    completion: Completion | None = None  # the request's own figures (usage with totals, timings)
    trimmed: int = 0  # earlier answers left out of the context for this one


@dataclass(frozen=True)
class Failed:
    """A step failed; stage: answer | classify | measure. variant: the stored partial answer, if any."""
    turn_id: int
    stage: str
    error: str
    index: int = 0
    variant: object | None = None


@dataclass(frozen=True)
class Classified:
    """The turn's category (a store category dict); final=False for auto mode's early local answer."""
    turn_id: int
    category: dict
    final: bool = True


@dataclass(frozen=True)
class Measuring:
    """Generic metrics are in (quick_report), the judge is still working."""
    turn_id: int
    quick: dict


@dataclass(frozen=True)
class Measured:
    turn_id: int
    report: object  # diversity.report.DiversityReport


@dataclass(frozen=True)
class StoreProblem:
    """The history cannot be written (error: why). lost 0: told once when the store starts failing; what
    could not be written is kept in memory and retried (StoreRecovered when it is all in). lost > 0: that
    many writes are given up (still waiting when the service closed, or refused for good)."""
    error: str
    lost: int = 0


@dataclass(frozen=True)
class StoreRecovered:
    """The history is written again; the writes kept while it failed (written) are all in the store."""
    written: int


Event = Union[TurnAdded, NotSent, Started, Delta, Waiting, VariantSaved, Failed, Classified, Measuring, Measured,
              StoreProblem, StoreRecovered]

RETRY_FIRST_S = 0.5  # the first retry of kept writes after the store failed; doubled up to RETRY_MAX_S
RETRY_MAX_S = 15.0
CLOSE_WAIT_S = 2.0  # how long closing the service keeps retrying writes still waiting (a lock about to go)


def store_errors() -> tuple[type[BaseException], ...]:
    """What opening or writing the history can raise: a locked or read-only database, a full disk."""
    import sqlite3

    from .store import StoreError

    return StoreError, sqlite3.Error, OSError


def fit_context(messages: list[dict], window: int, reserve: int) -> tuple[bool, int, list[dict]]:
    """(fits, tokens of the last message, messages trimmed to the window).

    A token is at least one UTF-8 byte, so a conversation whose bytes fit is known to fit
    without loading a tokenizer; a huge message is refused on its size alone.
    """
    last = messages[-1]["content"]
    if sum(len(m["content"].encode()) + 8 for m in messages) + reserve <= window:
        return True, len(last.encode()), messages
    from . import tokens

    if len(last) > (window - reserve) * tokens.MAX_CHARS_PER_TOKEN:
        return False, len(last) // 4, messages
    used = tokens.count_text(last)
    if used + reserve > window:
        return False, used, messages
    kept, _dropped = tokens.trim_to_fit(messages, window, reserve)
    return True, used, kept


def count_tokens(messages: list[dict], limit: int | None = None) -> int:
    from . import tokens

    return tokens.count_messages(messages, limit) if messages else 0


# --- the service --------------------------------------------------------------------------------


class ConversationService:
    """The flows of one conversation at a time. Use from one event loop; close with aclose().
    store None: nothing is saved (ids of unsaved turns are negative, unsaved answers have none)."""

    def __init__(self, store, settings: Settings, backend_name: str | None = None, *,
                 judge_method: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.backend_name, self.backend_config = settings.backend(backend_name)
        self.judge_method = judge_method
        self.conversation = None  # a store.Conversation: the active path, kept in memory
        self.listeners: list[Callable[[Event], None]] = []
        self._backends: dict[str, Backend] = {}
        self._judge = None
        self._categories: dict[int, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._unsaved_ids = 0
        # While the store fails: the writes not done yet, in order (run by _write_kept), the failure
        # told, the retrying task, and the rows written meanwhile for turns still known by their unsaved id.
        self._kept: collections.deque[Callable[[], object]] = collections.deque()
        self._failure: str | None = None
        self._written = 0
        self._retrying: asyncio.Task | None = None
        self._store_ids: dict[int, int] = {}
        self._kept_lock = threading.Lock()  # one thread runs the kept writes at a time

    # --- resources --------------------------------------------------------------------------

    def backend(self, name: str | None = None) -> Backend:
        """The chat client of a backend (default: this service's), made once."""
        name = name or self.backend_name
        if name not in self._backends:
            from .backends import make_backend

            self._backends[name] = make_backend(self.settings, name)
        return self._backends[name]

    def judge(self):
        """The diversity judge the settings ask for, made once."""
        if self._judge is None:
            from .diversity.judge import make_judge

            self._judge = make_judge(self.settings, self.judge_method, self.settings.judge.backend or self.backend_name)
        return self._judge

    async def aclose(self) -> None:
        """Stop background work, write what the store kept waiting (trying for CLOSE_WAIT_S), close the
        judge and every client made."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self._kept:
            await self._write_kept()
            if not self._kept or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        if self._kept:
            lost, self._kept = len(self._kept), collections.deque()
            self.emit(StoreProblem(self._failure or "the history could not be written", lost))
        if self._judge is not None:
            from .diversity.judge import close_judge

            judge, self._judge = self._judge, None
            await close_judge(judge)
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    @property
    def saving(self) -> bool:
        """Whether writes go to the store at once (else they wait in memory, or there is no store)."""
        return self.store is not None and self._failure is None and not self._kept

    def save(self, write, *args, again: Callable[[], object] | None = None):
        """write(*args) into the store now and return its result; while the store fails (or when this
        write fails) keep it to run later, in order, and return None. A write is one transaction, so
        running it again is safe; again: what to run instead when it is not (a writer's append)."""
        from .store import StoreError

        if self.store is None:
            return None
        later = again or ((lambda: write(*args)) if args else write)
        if not self.saving:
            self._keep(later)
            return None
        try:
            return write(*args)
        except StoreError as exc:  # the write itself is refused (its conversation is gone): no retry helps
            self.emit(StoreProblem(str(exc), 1))
        except store_errors() as exc:
            self._keep(later, exc)
        return None

    def store_failed(self, exc: BaseException) -> None:
        """The store fails: tell the listeners (once until it works again) and retry what is kept."""
        if self._failure is None:
            self._failure = str(exc) or type(exc).__name__
            self.emit(StoreProblem(self._failure))
        self._retry_soon()

    def _keep(self, write: Callable[[], object], exc: BaseException | None = None) -> None:
        if not (self._kept and self._kept[-1] == write):  # one flush of a stream is enough
            self._kept.append(write)
        self.store_failed(exc or RuntimeError("the history cannot be written"))

    def _retry_soon(self) -> None:
        if self._retrying is not None and not self._retrying.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next write or aclose() retries
            return
        self._retrying = self._spawn(self._retry())

    async def _retry(self) -> None:
        delay = RETRY_FIRST_S
        while self._failure is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            await self._write_kept()

    async def _write_kept(self) -> None:
        """Run the kept writes in a thread (a locked file must not hold the event loop); StoreRecovered
        when they are all in."""
        refused = await asyncio.to_thread(self._run_kept)
        for exc in refused:
            self.emit(StoreProblem(str(exc), 1))
        if not self._kept and self._failure is not None:
            self._failure, written, self._written = None, self._written, 0
            self.emit(StoreRecovered(written))

    def _run_kept(self) -> list[BaseException]:
        """The kept writes, in order, until one fails again (it stays first); returns the refused ones."""
        from .store import StoreError

        refused: list[BaseException] = []
        with self._kept_lock:
            if not self.store.can_write():  # still locked: not even a busy wait
                return refused
            while self._kept:
                try:
                    self._kept[0]()
                    self._written += 1
                except StoreError as exc:
                    refused.append(exc)
                except store_errors():
                    return refused
                self._kept.popleft()
        return refused

    def _stored(self, turn_id: int) -> int:
        """A turn's row id (a turn added while the store failed keeps its unsaved id in memory)."""
        if turn_id > 0:
            return turn_id
        from .store import NotFound

        if turn_id not in self._store_ids:
            raise NotFound("this message was never saved")
        return self._store_ids[turn_id]

    def _unsaved_id(self) -> int:
        self._unsaved_ids -= 1
        return self._unsaved_ids

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the tree ---------------------------------------------------------------------------

    @property
    def conversation_id(self) -> int | None:
        return self.conversation.id if self.conversation else None

    def open(self, conversation_id: int | None):
        """Read a conversation's active path (None, or an unknown id: a new, not yet stored one)."""
        self.conversation = None
        if conversation_id is not None:
            try:
                self.conversation = self.store.load_conversation(conversation_id)
            except KeyError:
                self.conversation = None
        if self.conversation is not None and self._store_ids:  # turns written late keep the id shown for them
            unsaved = {row: turn_id for turn_id, row in self._store_ids.items()}
            for turn in self.conversation.turns:
                turn.user.id = unsaved.get(turn.user.id, turn.user.id)
                for variant in turn.variants:
                    variant.user_turn_id = unsaved.get(variant.user_turn_id, variant.user_turn_id)
        return self.conversation

    def reload(self):
        """Read the active path again after a change made elsewhere (a variant shown, metrics saved);
        while writes wait in memory, the path in memory is the newer one and stays."""
        if not self.saving:
            return self.conversation
        return self.open(self.conversation_id)

    @property
    def turns(self) -> list:
        return self.conversation.turns if self.conversation else []

    def turn(self, turn_id: int | None = None):
        """A turn on the active path (default: the last), or None."""
        turns = self.turns
        if turn_id is None:
            return turns[-1] if turns else None
        return next((t for t in turns if t.user.id == turn_id), None)

    def history(self, upto_turn_id: int | None = None) -> list[dict]:
        """The active path as chat messages; with upto_turn_id, ending with that turn's user message."""
        messages: list[dict] = []
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.user.text})
            if turn.user.id == upto_turn_id:
                break
            if turn.active is not None and turn.active.text:
                messages.append({"role": "assistant", "content": turn.active.text})
        return messages

    def show_variant(self, turn_id: int, variant_id: int | None) -> None:
        """Show this answer at its turn; the path continues from it (None: an answer never saved)."""
        if variant_id is None:
            return
        if self.store is not None:
            self.save(lambda: self.store.set_active_variant(self._stored(turn_id), variant_id))
            if self.saving:
                self.reload()
                return
        if (turn := self.turn(turn_id)) is not None:  # not in the store (yet): the path in memory follows it
            turn.active_index = next((i for i, v in enumerate(turn.variants) if v.id == variant_id),
                                     turn.active_index)

    def _remember(self, turn_id: int, writer, text: str, strategy: str, backend: Backend, params: dict | None,
                  reason: str, usage: dict | None, timings: dict | None, error: str | None = None):
        """Finish a variant's row (writer None: the answer has no row yet; it is written whole, now or once
        the store works again) and add it to the tree in memory, as the store holds it (shown at its turn):
        what the service writes it knows, so no answer costs a read of the conversation. The variant's id
        is None until its row exists."""
        from .store import Variant

        turn = self.turn(turn_id)
        now = time.time()
        category = None
        if turn is not None:
            category = {**(turn.user.category or {}), **({"override": turn.user.override} if turn.user.override
                                                          else {})} or None
        variant = Variant(id=writer.variant_id if writer is not None else None, text=text,
                          status="done" if reason in (None, "stop") and not error else "cut-off",
                          finish_reason=reason, strategy=strategy, backend=backend.name, model=backend.model,
                          params=params, usage=usage, timings=timings, metrics=None, created=now, updated=now,
                          error=error, category=category, user_turn_id=turn_id)
        if writer is not None:
            self.save(writer.finish, reason, usage, timings, error, text)
        elif self.store is not None:
            def write_whole() -> None:  # safe to run again: a row made once is only finished again
                nonlocal writer
                if writer is None:
                    writer = self.store.start_variant(self._stored(turn_id), strategy=strategy, backend=backend.name,
                                                      model=backend.model, params=params or {})
                    writer.append(text, flush=False)
                writer.finish(reason, usage, timings, error)
                variant.id = writer.variant_id

            self.save(write_whole)
        if turn is not None:
            turn.variants.append(variant)
            turn.active_index = len(turn.variants) - 1
        return variant

    # --- send -------------------------------------------------------------------------------

    async def add_turn(self, text: str, category: dict | None = None) -> int:
        """Store a user message after the shown path (in a new conversation if none is open).
        The writes run in a thread: a request started just before goes out meanwhile."""
        from .store import Conversation, Turn, UserTurn

        last = self.turn()
        parent = last.active if last else None
        if self.conversation is None:
            self.conversation = Conversation(None, title_for(text), time.time(), time.time(), False)
        conversation = self.conversation
        user = UserTurn(None, text, category, None, parent.id if parent else None, time.time())

        def write() -> int:  # one transaction each: safe to run again
            from .store import NotFound

            if conversation.id is None:
                conversation.id = self.store.create_conversation(title_for(text))
            if parent is not None and parent.id is None:  # its answer's row was refused for good
                raise NotFound("the answer this message follows was never saved")
            return self.store.add_user_turn(conversation.id, text, parent.id if parent else None,
                                            category=user.category)

        if self.saving:
            try:
                user.id = await asyncio.to_thread(write)
            except store_errors() as exc:
                self.store_failed(exc)
        if user.id is None:
            user.id = self._unsaved_id()
            if self.store is not None:
                unsaved = user.id

                def write_later() -> None:
                    self._store_ids[unsaved] = write()

                self.save(write_later)
        conversation.turns.append(Turn(user, [], None))
        return user.id

    async def send(self, text: str, system: str | None = None, classify: bool = True,
                   **params) -> AsyncIterator[Event]:
        """Store the message, stream the answer and classify the message beside the stream (unless not
        `classify`). system: a system prompt sent first (not stored); params: sampling (temperature,
        max_tokens)."""
        config = self.backend_config
        messages = ([{"role": "system", "content": system}] if system else []) + self.history() + [
            {"role": "user", "content": text}]
        fits, used, kept = fit_context(messages, config.context_window, answer_reserve(config.max_tokens))
        if not fits:
            yield NotSent(used, config.context_window, self.backend_name)
            return
        new = self.conversation is None
        # The request leaves first; the message and the answer's row are stored while it is on its way.
        answer = _Answer(self, kept, "first", self.backend(), 0, params)
        try:
            turn_id = await self.add_turn(text)
            await answer.attach(turn_id)
            if classify:
                self._start_classification(turn_id)  # beside the stream, not before it
            yield TurnAdded(self.conversation.id, turn_id, text, new, len(messages) - len(kept))
            async for event in answer.events():
                yield event
        finally:
            await answer.stop()

    async def retry(self, turn_id: int | None = None) -> AsyncIterator[Event]:
        """One more plain answer to a turn (after a failed one)."""
        turn = self.turn(turn_id)
        if turn is None:
            return
        answer = await self._answer(turn.user.id, self.history(turn.user.id), "first")
        async for event in answer.events():
            yield event

    async def _answer(self, turn_id: int, messages: list[dict], strategy: str, backend_name: str | None = None,
                      index: int = 0, **params) -> "_Answer":
        answer = _Answer(self, messages, strategy, self.backend(backend_name), index, params)
        try:
            await answer.attach(turn_id)
        except BaseException:
            await answer.stop()
            raise
        return answer

    def save_answer(self, turn_id: int, text: str, completion: Completion, strategy: str, backend: Backend,
                    params: dict | None = None):
        """Store a finished answer as a variant of a turn (the streamed ones are stored as they arrive,
        by _Answer); returns the store.Variant."""
        return self._remember(turn_id, None, text, strategy, backend, params or {},
                              completion.finish_reason or "stop", *_usage_timings(completion))

    # --- categories -------------------------------------------------------------------------

    def _start_classification(self, turn_id: int) -> None:
        self._categories[turn_id] = asyncio.get_running_loop().create_future()
        self._spawn(self.classify(turn_id))

    async def classify(self, turn_id: int) -> dict:
        """Classify a turn (its category is stored, emitted and handed to whoever awaits `category`)."""
        turn = self.turn(turn_id)
        waiting = self._categories.setdefault(turn_id, asyncio.get_running_loop().create_future())
        if turn is None:
            if not waiting.done():
                waiting.set_result(taxonomy.OTHER)
            return {}
        from .classify import Classification, classify_turn

        index = self.turns.index(turn)
        before = None
        previous = self.turns[index - 1].user.category if index > 0 else None
        if previous and previous.get("letter"):
            with contextlib.suppress(ValueError):
                before = Classification.from_dict(previous)

        def early(result) -> None:  # auto mode: the local answer, while the model is still thinking
            self._set_category(turn_id, result.to_dict(), final=False)

        try:
            result = await classify_turn(turn.user.text, settings=self.settings, backend_name=self.backend_name,
                                         backend=self.backend(), previous=before, context=self.history(turn_id)[:-1],
                                         on_local=early)
            category = result.to_dict()
        except asyncio.CancelledError:
            if not waiting.done():
                waiting.cancel()
            raise
        except Exception as exc:
            self.emit(Failed(turn_id, "classify", str(exc) or type(exc).__name__))
            category = {"letter": taxonomy.OTHER, "confidence": 0.0, "method": "failed", "detail": str(exc)}
        self._set_category(turn_id, category, final=True)
        return category

    def _set_category(self, turn_id: int, category: dict, final: bool) -> None:
        if self.store is not None:
            self.save(lambda: self.store.set_category(self._stored(turn_id), category))
        if (turn := self.turn(turn_id)) is not None:  # the tree may have been re-read meanwhile
            turn.user.category = category
        waiting = self._categories.get(turn_id)
        if final and waiting is not None and not waiting.done():
            waiting.set_result(category.get("letter") or taxonomy.OTHER)
        self.emit(Classified(turn_id, category, final))

    def set_override(self, turn_id: int, letter: str | None) -> None:
        """The user's category for a turn; it wins over the classifier from now on."""
        if self.store is not None:
            self.save(lambda: self.store.set_category_override(self._stored(turn_id), letter))
        turn = self.turn(turn_id)
        if turn is not None:
            category = taxonomy.get(letter) if letter else None
            turn.user.override = category.letter if category else (taxonomy.OTHER if letter else None)
            self.emit(Classified(turn_id, turn.user.category or {}, True))

    async def category(self, turn_id: int) -> str:
        """The letter a regeneration uses: the override, else the classifier's (awaited if still running)."""
        turn = self.turn(turn_id)
        if turn is not None and turn.user.letter:
            return turn.user.letter
        waiting = self._categories.get(turn_id)
        if waiting is None:  # loaded unclassified (an earlier run stopped first): classify now
            if turn is None:
                return taxonomy.OTHER
            self._start_classification(turn_id)
            waiting = self._categories[turn_id]
        try:
            letter = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            if waiting.cancelled():
                return taxonomy.OTHER
            raise
        turn = self.turn(turn_id)
        return (turn.user.letter if turn is not None else None) or letter

    def classify_pending(self) -> None:
        """Classify, in the background, the turns of the open conversation that have no category yet."""
        for turn in self.turns:
            if turn.user.letter is None and turn.user.id not in self._categories:
                self._start_classification(turn.user.id)

    # --- regenerate, brainstorm, compare ----------------------------------------------------

    async def regenerate(self, strategy: str | None = None, turn_id: int | None = None,
                         n: int = 1) -> AsyncIterator[Event]:
        """n new answers to a turn (default: the last) with a regeneration strategy, each saved as a
        variant as soon as it is complete. A turn whose only answer failed gets a plain retry instead."""
        turn = self.turn(turn_id)
        if turn is None:
            return
        flow = (self.retry(turn.user.id) if not usable(turn.variants)
                else self._generate(turn.user.id, strategy, n, {"brainstorm": n} if n > 1 else {}))
        async for event in flow:
            yield event

    async def sample(self, text: str, strategy: str, n: int, category: dict, **sampling) -> AsyncIterator[Event]:
        """A new conversation's message (its category already known) and n answers to it at once."""
        turn_id = await self.add_turn(text, category)
        yield TurnAdded(self.conversation.id, turn_id, text, True, 0)
        async for event in self._generate(turn_id, strategy, n, dict(sampling), **sampling):
            yield event

    async def _generate(self, turn_id: int, strategy: str | None, n: int, params: dict,
                        **sampling) -> AsyncIterator[Event]:
        """n new answers with a strategy (diversity.generate.generate_variants), different from the
        turn's usable answers; each saved (with `params`) as soon as it is complete."""
        strategy = strategy or self.settings.regenerate.strategy
        letter = await self.category(turn_id)
        from .diversity.generate import generate_variants

        backend = self.backend()
        path = self.history(turn_id)
        earlier = [v.text for v in usable(self.turn(turn_id).variants)]

        async def run(queue: asyncio.Queue) -> None:
            started: set[int] = set()

            def on_text(index: int, delta: str) -> None:
                if index not in started:
                    started.add(index)
                    queue.put_nowait(Started(turn_id, index, backend.name, backend.model, strategy, None))
                queue.put_nowait(Delta(turn_id, index, delta))

            def on_answer(index: int, answer) -> None:
                variant = self.save_answer(turn_id, answer.text, answer.completion, strategy, backend, params)
                queue.put_nowait(VariantSaved(turn_id, index, variant, answer.note, answer.completion, answer.trimmed))

            await generate_variants(backend, strategy, history=path[:-1], prompt=path[-1]["content"],
                                    earlier=earlier, category=taxonomy.get(letter), n=n, on_text=on_text,
                                    on_answer=on_answer, **sampling)

        async for item in _drain(run):
            if isinstance(item, BaseException):
                yield Failed(turn_id, "answer", str(item) or type(item).__name__)
            else:
                yield item

    async def compare_turn(self, text: str, backend_names: list[str], n: int = 1, strategy: str | None = None,
                           **sampling) -> AsyncIterator[Event]:
        """Store the message (after the shown path), classify it beside the streams and put it to every
        backend at once (see compare). NotSent when it does not fit the smallest context window."""
        configs = [(name, self.settings.backend(name)[1]) for name in backend_names]
        if not configs:
            return
        messages = self.history() + [{"role": "user", "content": text}]
        name, config = min(configs, key=lambda c: c[1].context_window)
        fits, used, kept = fit_context(messages, config.context_window, answer_reserve(config.max_tokens))
        if not fits:
            yield NotSent(used, config.context_window, name)
            return
        new = self.conversation is None
        # As in send, the plain requests leave first; the message is stored while they are on their way.
        early: dict[int, _Answer] = {}
        if not strategy:
            for place, backend_name in enumerate(backend_names):
                with contextlib.suppress(Exception):  # a backend that cannot start: compare reports it
                    backend = self.backend(backend_name)
                    for k in range(n):
                        early[place * n + k] = _Answer(self, kept, "compare", backend, place * n + k, sampling)
        try:
            turn_id = await self.add_turn(text)
            self._start_classification(turn_id)
            yield TurnAdded(self.conversation.id, turn_id, text, new, len(messages) - len(kept))
            async for event in self.compare(backend_names, turn_id, n, strategy, messages=kept, started=early,
                                            **sampling):
                yield event
        finally:
            for answer in early.values():  # not handed to compare (it stopped first)
                await answer.stop()

    async def compare(self, backend_names: list[str], turn_id: int | None = None, n: int = 1,
                      strategy: str | None = None, messages: list[dict] | None = None,
                      started: dict | None = None, **sampling) -> AsyncIterator[Event]:
        """The turn sent to several backends at once, n answers each, streamed side by side (answer
        index: backend's place x n + k), each stored as a variant with its backend and model; one
        backend failing does not stop the others. Plain answers by default; with a regeneration
        strategy, each backend's n answers follow it. Measure the turn with the variant ids
        afterwards to judge all the answers together, across backends. messages: what to send
        (default: the active path up to the turn); started: answers whose requests already left, by index."""
        turn = self.turn(turn_id)
        if turn is None or not backend_names:
            return
        turn_id = turn.user.id
        messages = messages or self.history(turn_id)

        async def plain(queue: asyncio.Queue, index: int, name: str) -> None:
            answer = (started or {}).pop(index, None)
            try:
                if answer is None:
                    answer = await self._answer(turn_id, messages, "compare", name, index, **sampling)
                else:
                    try:
                        await answer.attach(turn_id)
                    except BaseException:
                        await answer.stop()
                        raise
            except Exception as exc:  # this backend cannot even start (a bad config, a missing key)
                queue.put_nowait(Failed(turn_id, "answer", f"{name}: {exc}", index))
                return
            async for event in answer.events():
                queue.put_nowait(event)

        async def generated(queue: asyncio.Queue, first: int, name: str) -> None:
            from .diversity.generate import generate_variants

            done: set[int] = set()
            try:
                backend = self.backend(name)
                letter = await self.category(turn_id)

                def on_text(k: int, delta: str) -> None:
                    if first + k not in done:
                        done.add(first + k)
                        queue.put_nowait(Started(turn_id, first + k, backend.name, backend.model, strategy, None))
                    queue.put_nowait(Delta(turn_id, first + k, delta))

                def on_answer(k: int, answer) -> None:
                    variant = self.save_answer(turn_id, answer.text, answer.completion, strategy, backend,
                                               {"compare": backend_names})
                    queue.put_nowait(VariantSaved(turn_id, first + k, variant, answer.note, answer.completion))

                await generate_variants(backend, strategy, history=messages[:-1], prompt=messages[-1]["content"],
                                        earlier=[], category=taxonomy.get(letter), n=n, on_text=on_text,
                                        on_answer=on_answer, **sampling)
            except Exception as exc:
                queue.put_nowait(Failed(turn_id, "answer", f"{name}: {exc}", first + len(done)))

        async def run(queue: asyncio.Queue) -> None:
            jobs = []
            for place, name in enumerate(backend_names):
                if strategy:
                    jobs.append(generated(queue, place * n, name))
                else:
                    jobs += [plain(queue, place * n + k, name) for k in range(n)]
            await asyncio.gather(*jobs)

        async for item in _drain(run):
            if isinstance(item, BaseException):
                yield Failed(turn_id, "answer", str(item) or type(item).__name__)
            else:
                yield item

    # --- diversity --------------------------------------------------------------------------

    async def measure(self, turn_id: int | None = None, variant_ids: list[int] | None = None):
        """Judge every usable answer of a turn together (or those of `variant_ids`, a comparison's):
        Measuring (generic metrics) then Measured (the judge's verdict, saved on the newest answer).
        When the answers come from several models, the report's `cross_model` names each group's
        models. Returns the report, or None when it has none.
        Async all the way: cancelling it (a newer regenerate) stops it."""
        turn = self.turn(turn_id)
        variants = judged(turn, variant_ids)
        if not variants:
            return None
        from .diversity.report import analyze, quick_report

        texts = [v.text for v in variants]
        try:
            quick = await asyncio.to_thread(quick_report, texts)
            self.emit(Measuring(turn.user.id, quick))
            letter = await self.category(turn.user.id)
            report = await analyze(turn.user.text, taxonomy.get(letter), texts, self.judge())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.emit(Failed(turn.user.id, "measure", str(exc) or type(exc).__name__))
            return None
        from .diversity.crossmodel import cross_model, model_label

        labels = [model_label(v.backend, v.model) for v in variants]
        if len(set(labels)) > 1:
            report.cross_model = cross_model(report, labels, taxonomy.get(letter)).to_dict()
        newest = variants[-1]
        if self.store is not None:
            def write() -> None:
                if newest.id is None:  # its own row was refused for good
                    from .store import NotFound

                    raise NotFound("the answer was never saved")
                self.store.save_metrics(newest.id, report.to_dict())

            self.save(write)
        if self.saving:
            self.reload()
        else:
            newest.metrics = report.to_dict()  # in memory until the store takes it, if it has one
        self.emit(Measured(turn.user.id, report))
        return report


_END = object()


class _Answer:
    """One answer streaming into the store. The request starts when this is made, before the
    answer has a row in the store (attach() makes it, in a thread, while the request is on its
    way); events() hands out what arrives, and closing it (or cancelling the task iterating it)
    stops the stream and records the answer as cancelled."""

    def __init__(self, service: ConversationService, messages: list[dict], strategy: str, backend: Backend,
                 index: int, params: dict) -> None:
        self.service, self.strategy, self.backend, self.index, self.params = service, strategy, backend, index, params
        self.turn_id: int | None = None
        self.writer = None  # the variant's row, once attached (None when the answer is not saved)
        self.parts: list[str] = []  # the text so far
        self.finished = False
        self.attached = asyncio.Event()
        # Text waits in a list on the queue that grows until it is taken: what queued up meanwhile goes out as
        # one Delta (a burst is thousands of chunks, each costing the consumer a turn).
        self.queue: asyncio.Queue = asyncio.Queue()
        self._open_text: list[str] | None = None  # the queue's last item, while text can still join it
        self.task = asyncio.ensure_future(self._run(messages))

    async def attach(self, turn_id: int) -> None:
        """Store the answer's row under its turn and catch up with the text so far."""
        self.turn_id = turn_id
        service = self.service
        try:  # no row while the store fails: the answer is written whole when it ends (service._remember)
            if service.saving and turn_id > 0:
                writer = await asyncio.to_thread(service.store.start_variant, turn_id, strategy=self.strategy,
                                                 backend=self.backend.name, model=self.backend.model,
                                                 params=self.params)
                self.writer = writer
                self._write("".join(self.parts))  # what arrived before the row existed
        except store_errors() as exc:
            service.store_failed(exc)
        finally:
            self.attached.set()

    def _write(self, text: str) -> None:
        """Streamed text into the row: flushed now, or held by the writer and flushed when the store works."""
        if self.service.saving:
            self.service.save(self.writer.append, text, again=self.writer.flush)
        else:
            self.writer.append(text, flush=False)
            self.service.save(self.writer.flush)

    async def _run(self, messages: list[dict]) -> None:
        def on_text(delta: str) -> None:
            self.parts.append(delta)
            if self.writer is not None:
                self._write(delta)
            if self._open_text is None:
                self._open_text = []
                self.queue.put_nowait(self._open_text)
            self._open_text.append(delta)

        completion, error, cancelled = None, None, False
        try:
            completion = await collect(self.backend, messages, on_text=on_text, on_wait=self._put, **self.params)
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:  # a BackendError's message is written for the user
            error = str(exc) or type(exc).__name__
            partial = getattr(exc, "partial", "")
            if partial and not self.parts:
                on_text(partial)  # stored too, not only shown
        finally:
            await self.attached.wait()
            if self.turn_id is not None:  # attached: saved or not, the answer ends as a variant
                reason = "cancelled" if cancelled else "error" if error else (completion.finish_reason or "stop")
                variant = self._finish(reason, *_usage_timings(completion), error=error,
                                       text=completion.text if completion is not None else None)
                if not cancelled:
                    self._put(Failed(self.turn_id, "answer", error, self.index, variant) if error
                              else VariantSaved(self.turn_id, self.index, variant, "", completion))
            self._put(_END)

    def _put(self, item) -> None:
        self._open_text = None  # text after this item comes after it
        self.queue.put_nowait(item)

    async def events(self) -> AsyncIterator[Event]:
        """Started, then Delta, then VariantSaved or Failed (needs attach() first)."""
        try:
            await self.attached.wait()
            yield Started(self.turn_id, self.index, self.backend.name, self.backend.model, self.strategy,
                          self.writer.variant_id if self.writer else None)
            while (item := await self.queue.get()) is not _END:
                if isinstance(item, list):
                    if item is self._open_text:
                        self._open_text = None
                    yield Delta(self.turn_id, self.index, "".join(item))
                elif isinstance(item, (VariantSaved, Failed)):
                    yield item
                else:  # a RetryWait
                    yield Waiting(self.turn_id, self.index, item)
        finally:
            await self.stop()

    async def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()
        self.attached.set()  # never attached (the turn could not be stored): nothing to finish
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.writer is not None and not self.finished:  # cancelled before it ever ran
            self._finish("cancelled", None, None)

    def _finish(self, reason: str, usage: dict | None, timings: dict | None, error: str | None = None,
                text: str | None = None):
        """text: the whole answer when the client joined it already (a long answer is not copied twice)."""
        self.finished = True
        if text is None:
            text = "".join(self.parts)
        self.parts = [text]  # the pieces go: one copy of the text is kept, not two
        return self.service._remember(self.turn_id, self.writer, text, self.strategy, self.backend,
                                      self.params, reason, usage, timings, error=error)


async def _drain(run: Callable[[asyncio.Queue], object]) -> AsyncIterator:
    """Run `run(queue)` and yield what it puts on the queue as it arrives; its exception comes last
    (as an item), and cancelling the consumer cancels it."""
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(run(queue))
    try:
        while not (task.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        if not task.cancelled() and task.exception() is not None:
            yield task.exception()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _usage_timings(completion: Completion | None) -> tuple[dict | None, dict | None]:
    if completion is None:
        return None, None
    usage = completion.usage
    return ({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens} if usage else None,
            {"first_token_s": completion.first_token_s, "total_s": completion.total_s})
