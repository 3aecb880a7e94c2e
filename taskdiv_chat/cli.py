"""Command line: `taskdiv-chat` starts the chat UI; subcommands work without it.

Each group of subcommands lives in taskdiv_chat/commands/<group>.py with a
`register(subparsers)` function; handlers import their heavy parts lazily so
`--help` and the UI start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .config import ConfigError

COMMAND_GROUPS = ("chat", "classify", "diversity", "store")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskdiv-chat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"taskdiv-chat {__version__}")
    parser.add_argument("--config", help="config file (default: $TASKDIV_CONFIG or the platform config dir)")
    parser.add_argument("--backend", help="backend name from the config (default: default_backend)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(f"taskdiv_chat.commands.{group}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from .tui.app import run_app

            return run_app(args) or 0
        return args.func(args) or 0
    except ConfigError as exc:
        print(f"taskdiv-chat: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
