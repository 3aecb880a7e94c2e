"""The streaming writer: an answer reaches the file as it arrives; a crashed writer's answer is cut off."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .schema import transaction
from .tree import touch

if TYPE_CHECKING:
    from . import Store

FLUSH_INTERVAL = 0.25  # seconds: the most streamed text a crash can lose

_live_writers: "weakref.WeakSet[VariantWriter]" = weakref.WeakSet()  # this process's open streams


class VariantWriter:
    """Writes one streaming answer as it arrives: buffered, flushed at most FLUSH_INTERVAL late.

    Every flush rewrites the variant's text in its own short transaction, so a crash
    keeps everything up to the last flush. finish() records how it ended; the
    partial text is always kept.
    """

    def __init__(self, store: "Store", variant_id: int):
        self.store = store
        self.variant_id = variant_id
        self._parts: list[str] = []
        self._flushed_len = 0
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.finished = False
        _live_writers.add(self)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, text_delta: str, flush: bool = True) -> None:
        """Add streamed text; flush False: only hold it (the store fails: a later flush() or finish() writes it)."""
        if not text_delta:
            return
        with self._lock:
            if self.finished:
                raise StoreError(f"variant {self.variant_id} is already finished")
            self._parts.append(text_delta)
            if not flush:
                return
            wait = FLUSH_INTERVAL - (time.monotonic() - self._last_flush)
            if wait <= 0:
                self._flush_locked()
            elif self._timer is None:  # a stalled stream still reaches the disk in time
                self._timer = threading.Timer(wait, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            if not self.finished:
                self._flush_locked()

    def _flush_from_timer(self) -> None:
        try:
            self.flush()
        except (sqlite3.Error, StoreError, AttributeError):  # busy or closed: the next append or finish retries
            pass

    def _flush_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text = self.text
        if len(text) != self._flushed_len:
            with self.store._tx(durable=False) as db:
                db.execute("UPDATE messages SET text = ?, updated = ? WHERE id = ?",
                           (self.store._scrub.text(text), time.time(), self.variant_id))
            self._flushed_len = len(text)
        self._last_flush = time.monotonic()

    def finish(self, finish_reason: str | None = "stop", usage: Any = None, timings: dict | None = None,
               error: str | None = None, text: str | None = None) -> None:
        """Record the end: 'done' for a normal stop, else 'cut-off' with the reason (text kept).
        text: everything appended, joined already by the caller (a long answer is not copied once more)."""
        with self._lock:
            if self.finished:
                return
            if text is not None:
                self._parts = [text]
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._record_end(finish_reason, usage, timings, error)
            self.finished = True
        _live_writers.discard(self)

    def _record_end(self, finish_reason: str | None, usage: Any, timings: dict | None, error: str | None) -> None:
        done = finish_reason in (None, "stop") and not error
        status = "done" if done else "cut-off"
        reason = finish_reason or ("error" if error else "stop")
        now = time.time()
        scrub = self.store._scrub
        with self.store._tx() as db:
            db.execute(
                "UPDATE messages SET text = ?, status = ?, finish_reason = ?, error = ?, usage = ?, timings = ?, "
                "updated = ?, writer_pid = NULL WHERE id = ?",
                (scrub.text(self.text), status, reason, None if error is None else scrub.text(error),
                 scrub.json(usage), scrub.json(timings), now, self.variant_id),
            )
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (self.variant_id,)).fetchone()
            if row:
                touch(db, row[0], now)

    def __enter__(self) -> "VariantWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.finished:
            return
        if exc_type is None:
            self.finish("stop")
        elif issubclass(exc_type, (KeyboardInterrupt, asyncio.CancelledError)):
            self.finish("cancelled")
        else:
            self.finish("error", error=str(exc) or exc_type.__name__)


def writers_of(store: "Store") -> list[VariantWriter]:
    """This store's unfinished streams."""
    return [w for w in list(_live_writers) if w.store is store]


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def recover_crashed(db: sqlite3.Connection, real_path: str, own_pid: int) -> None:
    """Variants still 'streaming' whose writer is gone become cut off, reason 'crash'. Run when the file opens."""
    rows = db.execute("SELECT id, writer_pid FROM messages WHERE status = 'streaming'").fetchall()
    if not rows:
        return
    # Listed after reading: a writer is registered before its row is committed (start_variant).
    live = {w.variant_id for w in list(_live_writers) if w.store._real_path == real_path and not w.finished}
    # Pid reuse could keep a dead writer's variant 'streaming' a while; it is rare and harmless.
    dead = [vid for vid, pid in rows if vid not in live and not (pid != own_pid and pid_alive(pid))]
    if dead:
        with transaction(db) as tx:
            tx.executemany("UPDATE messages SET status = 'cut-off', finish_reason = 'crash', "
                           "writer_pid = NULL WHERE id = ? AND status = 'streaming'", [(v,) for v in dead])
