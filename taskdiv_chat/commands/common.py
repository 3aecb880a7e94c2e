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
    print(f"taskdiv-chat: {message}", file=sys.stderr)
    return code
