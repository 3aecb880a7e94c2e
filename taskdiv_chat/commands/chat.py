"""`ask`, `models`, `locate` and `config check|init`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .common import (
    add_backend_arg,
    add_raw_arg,
    fail,
    note,
    note_store_problem,
    open_history,
    read_text,
    settings_and_backend,
    shown,
    to_terminal,
)


def register(sub: argparse._SubParsersAction) -> None:
    ask = sub.add_parser("ask", help="ask one question and stream the answer to stdout")
    ask.add_argument("prompt", nargs="?", help="the question (read from stdin when omitted)")
    add_backend_arg(ask)
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--temperature", type=float, help="sampling temperature")
    ask.add_argument("--max-tokens", type=int, help="cap on the answer's length")
    ask.add_argument("--json", action="store_true", help="print one JSON object (text, backend, model, usage, timings)")
    ask.add_argument("--no-save", action="store_true", help="do not record the exchange in the history")
    add_raw_arg(ask)
    ask.set_defaults(func=cmd_ask)

    models = sub.add_parser("models", help="list the models a backend serves")
    add_backend_arg(models)
    add_raw_arg(models)
    models.set_defaults(func=cmd_models)

    locate = sub.add_parser("locate", help="print the config, data and cache paths")
    locate.set_defaults(func=cmd_locate)

    config = sub.add_parser("config", help="check or create the config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate the config file (exit 2 when broken)")
    check.set_defaults(func=cmd_config_check)
    init = config_sub.add_parser("init", help="write a commented example config (never overwrites)")
    init.set_defaults(func=cmd_config_init)


def cmd_ask(args) -> int:
    from ..conversation import ConversationService, Delta, Failed, NotSent, VariantSaved, Waiting
    from ..sanitize import DisplayStream, json_for_display

    settings, name = settings_and_backend(args)
    prompt = read_text(args.prompt)
    if prompt is None or (args.system is not None and read_text(args.system, "--system") is None):
        return 2
    if not prompt.strip():
        return fail("nothing to ask: give a prompt or pipe one on stdin")
    # A terminal gets the answer through for_display (a model must not retitle the window or
    # write the clipboard); a pipe, a file or --raw gets it byte for byte.
    terminal = to_terminal(args)
    screen = DisplayStream() if terminal else None
    params = {k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None}

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    ended = []  # the last event; not run()'s result, whose repr asyncio.run may build (a copy of a huge answer)

    async def run() -> None:
        with open_history(settings, args.no_save) as store:
            service = ConversationService(store, settings, name)
            service.listeners.append(note_store_problem)
            try:
                async for event in service.send(prompt, system=args.system, classify=False, **params):
                    if isinstance(event, Delta) and not args.json:
                        write(screen.feed(event.text) if screen else event.text)
                    elif isinstance(event, Waiting):
                        note(event.wait.describe())
                    elif isinstance(event, (VariantSaved, Failed, NotSent)):
                        ended.append(event)
                        return
            finally:
                await service.aclose()

    asyncio.run(run())
    end = ended[0] if ended else None
    if isinstance(end, NotSent):
        return fail(f"the prompt is {end.tokens} tokens; {end.backend}'s context window is {end.window}")
    if isinstance(end, Failed):
        if not args.json and end.variant is not None and end.variant.text:
            write((screen.flush() if screen else "") + "\n")
        return fail(end.error)
    if args.json:
        text = json.dumps(end.completion.as_dict(), ensure_ascii=False)
        print(json_for_display(text) if terminal else text)
    else:
        write((screen.flush() if screen else "") + ("" if end.variant.text.endswith("\n") else "\n"))
    return 0


def cmd_models(args) -> int:
    from ..backends import make_backend
    from ..backends.base import BackendError

    settings, name = settings_and_backend(args)
    backend = make_backend(settings, name)

    async def run():
        try:
            return await backend.list_models()
        finally:
            await backend.aclose()

    try:
        terminal = to_terminal(args)
        for model in asyncio.run(run()):
            print(shown(model, terminal))
    except BackendError as exc:
        return fail(str(exc))
    return 0


def cmd_locate(args) -> int:
    from ..backends.base import BackendError
    from ..backends.local import model_path
    from ..config import bundled_themes_dir, cache_dir, config_path, data_dir, user_themes_dir

    path = config_path(args.config)
    print(f"config: {path}{'' if path.exists() else '  (not created: defaults in use)'}")
    print(f"themes: {user_themes_dir(path)}")
    bundled = sorted(p.stem for p in bundled_themes_dir().glob("*.toml"))
    print(f"bundled themes: {', '.join(bundled) or 'none (a broken install)'}  ({bundled_themes_dir()})")
    print(f"data:   {data_dir()}")
    print(f"cache:  {cache_dir()}")
    try:
        print(f"model:  {model_path()}")
    except BackendError as exc:
        print(f"model:  {exc}")
    return 0


def cmd_config_check(args) -> int:
    from ..config import check_api_keys, config_path, load_settings

    settings = load_settings(args.config)
    check_api_keys(settings, args.config)
    path = config_path(args.config)
    names = ", ".join(f"{n} ({b.kind}{', ' + b.model if b.model else ''})" for n, b in settings.backends.items())
    print(f"{path}: OK. default backend: {settings.default_backend}; backends: {names}")
    from ..capability import cached

    for n, b in settings.backends.items():  # may it classify and judge? (the cached self-check, or the config)
        print(f"  {n}: {cached(b).summary}")
    return 0


def cmd_config_init(args) -> int:
    from ..config import EXAMPLE_CONFIG, config_path

    path = config_path(args.config)
    if path.exists():
        return fail(f"{path} already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    print(f"wrote {path}")
    return 0
