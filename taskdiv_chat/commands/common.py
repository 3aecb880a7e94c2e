"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
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


def store_errors() -> tuple[type[BaseException], ...]:
    """What opening or writing the history can raise: a locked or read-only database, a full disk."""
    import sqlite3

    from ..store import StoreError

    return StoreError, sqlite3.Error, OSError
