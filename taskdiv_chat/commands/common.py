"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from ..config import Settings, load_for_backend


def add_backend_arg(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the subcommand: `taskdiv-chat ask --backend openai ...`
    parser.add_argument("--backend", default=argparse.SUPPRESS, help="backend name from the config")


def settings_and_backend(args) -> tuple[Settings, str]:
    """Load the config and pick the backend; raises ConfigError (exit 2) when broken."""
    return load_for_backend(getattr(args, "config", None), getattr(args, "backend", None))


def fail(message: str, code: int = 1) -> int:
    print(f"taskdiv-chat: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def history_store(settings: Settings, throwaway: bool = False):
    """The conversation store; with `throwaway` (--no-save) an empty one in a temporary folder."""
    from ..store import Store

    if not throwaway:
        with Store(secrets=settings.secret_values()) as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="taskdiv-") as folder, Store(Path(folder) / "history.db") as store:
        yield store
