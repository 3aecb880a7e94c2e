"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import sys

from ..config import Settings, load_for_backend


def add_backend_arg(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the subcommand: `taskdiv-chat ask --backend openai ...`
    parser.add_argument("--backend", default=argparse.SUPPRESS, help="backend name from the config")


def settings_and_backend(args) -> tuple[Settings, str]:
    """Load the config and pick the backend; raises ConfigError (exit 2) when broken."""
    return load_for_backend(getattr(args, "config", None), getattr(args, "backend", None))


def fail(message: str, code: int = 1) -> int:
    """`message` as one line on stderr; returns the exit code."""
    note(message)
    return code


def note(message: str) -> None:
    """One line on stderr. Messages quote servers, files and exceptions: secrets are
    redacted and escape sequences neutralised, whatever stderr is."""
    from ..redact import redact
    from ..sanitize import for_display

    print(f"taskdiv-chat: {' '.join(for_display(redact(message)).splitlines())}", file=sys.stderr)


def read_text(value: str | None, what: str = "the prompt") -> str | None:
    """`value`, or stdin when it is None, as text; None (after one line on stderr) when it
    is not UTF-8 (Python keeps undecodable bytes as lone surrogates, which nothing can send)."""
    try:
        text = value if value is not None else sys.stdin.read()
        text.encode("utf-8")
    except UnicodeError:
        note(f"{what} is not UTF-8 text")
        return None
    return text


def add_raw_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", action="store_true",
                        help="write server and stored text byte for byte, escape sequences included, even to a "
                             "terminal (a pipe or a file always gets the exact text)")


def to_terminal(args, stream=None) -> bool:
    """True when text goes to a terminal (and not --raw): it must pass through for_display there."""
    stream = stream or sys.stdout
    try:
        return not getattr(args, "raw", False) and stream.isatty()
    except ValueError:  # a closed stream
        return False


def shown(text: str, terminal: bool) -> str:
    """Server or file text as written: made safe on a terminal, exact anywhere else."""
    from ..sanitize import for_display

    return for_display(text) if terminal else text


@contextlib.contextmanager
def open_history(settings: Settings, no_save: bool = False):
    """The conversation store, closed afterwards; None with --no-save, or (after one line on stderr)
    when it cannot be opened: a locked or read-only history costs the saving, not the answers."""
    from ..store import Store

    store = None
    if not no_save:
        try:
            store = Store(secrets=settings.secret_values())
        except store_errors() as exc:
            note(f"the answers are not saved in the history: {exc}")
    try:
        yield store
    finally:
        if store is not None:
            with contextlib.suppress(*store_errors()):  # a failed store was reported already
                store.close()


def note_store_problem(event) -> None:
    """A ConversationService listener: one line on stderr when writes to the history are given up. A store
    that fails for a while says nothing here: the service keeps the writes and makes them when it can."""
    from ..conversation import StoreProblem

    if isinstance(event, StoreProblem) and event.lost:
        note(f"the answers are not saved in the history: {event.error}")


def store_errors() -> tuple[type[BaseException], ...]:
    """What opening or writing the history can raise (conversation.store_errors)."""
    from ..conversation import store_errors as errors

    return errors()
