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

COMMAND_GROUPS = ("chat", "classify", "compare", "diversity", "store")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskdiv-chat", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"taskdiv-chat {__version__}")
    parser.add_argument("--config", help="config file (default: $TASKDIV_CONFIG or the platform config dir)")
    parser.add_argument("--backend", help="backend name from the config (default: default_backend)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(f"taskdiv_chat.commands.{group}").register(sub)
    return parser


def chat_ui_args(argv: list[str]) -> argparse.Namespace | None:
    """The options of a bare `taskdiv-chat [--config F] [--backend B]` (the chat UI), else None.

    The UI's start skips build_parser(): it imports every command module and the config
    (pydantic), which would delay the first paint; the app loads the config itself."""
    parser = argparse.ArgumentParser(prog="taskdiv-chat", add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--config")
    parser.add_argument("--backend")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --config without a file: build_parser() says so
        return None
    return None if rest else args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ui_args = chat_ui_args(argv)
    if ui_args is not None:
        from .tui.app import run_app

        try:
            return run_app(ui_args) or 0
        except KeyboardInterrupt:
            return 130
    from .config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from .tui.app import run_app

            return run_app(args) or 0
        return args.func(args) or 0
    except ConfigError as exc:
        from .commands.common import fail

        return fail(f"config error: {exc}", 2)
    except KeyboardInterrupt:
        return 130
