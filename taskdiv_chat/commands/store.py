"""`history`, `export` and `import`: the conversation store from the command line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from .common import add_raw_arg, fail, note, shown, store_errors, to_terminal

MAX_PROBLEMS_SHOWN = 5


def register(subparsers) -> None:
    p = subparsers.add_parser("history", help="list recent conversations, or search all of them")
    p.add_argument("--search", metavar="TEXT", help="full-text search over every message and answer")
    p.add_argument("--limit", type=int, default=50, help="how many rows (default 50)")
    p.add_argument("--all", action="store_true", help="include archived conversations")
    add_raw_arg(p)
    p.set_defaults(func=history)

    p = subparsers.add_parser("export", help="write one conversation as Markdown or JSON")
    p.add_argument("id", type=int, help="conversation id (see `taskdiv-chat history`)")
    p.add_argument("--format", choices=("md", "json"),
                   help="md: readable; json: complete, re-importable (default: from -o's suffix, else md)")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: standard output)")
    add_raw_arg(p)
    p.set_defaults(func=export)

    p = subparsers.add_parser("import", help="add a conversation from a JSON export")
    p.add_argument("file", help="a file written by `taskdiv-chat export ID --format json` (- for stdin)")
    p.set_defaults(func=import_)


@contextlib.contextmanager
def _open(args):
    """The store; on the way out, one line for each bad value it met (replaced or skipped, see store.rows)."""
    from ..config import ConfigError, load_settings
    from ..store import Store

    try:  # the config's header values and keys are scrubbed too; a broken config must not lock you out
        secrets = load_settings(getattr(args, "config", None)).secret_values()
    except ConfigError:
        secrets = ()
    with Store(secrets=secrets) as store:
        try:
            yield store
        finally:
            for problem in store.problems[:MAX_PROBLEMS_SHOWN]:
                note(f"history database: {problem}")
            if len(store.problems) > MAX_PROBLEMS_SHOWN:
                note(f"history database: and {len(store.problems) - MAX_PROBLEMS_SHOWN} more problems")


def _highlight(hit, terminal: bool) -> str:
    # Each piece of the snippet is made safe before our own highlighting escapes go round it.
    start, end = ("\x1b[1;7m", "\x1b[0m") if terminal and not os.environ.get("NO_COLOR") else ("[", "]")
    return "".join(f"{start}{shown(text, terminal)}{end}" if lit else shown(text, terminal)
                   for text, lit in hit.parts())


def _when(timestamp) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
    except (OverflowError, ValueError, OSError, TypeError):  # a time no calendar has: show that, not a traceback
        return "?"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def history(args) -> int:
    terminal = to_terminal(args)
    try:
        with _open(args) as store:
            if args.search is not None:
                hits = store.search(args.search, limit=args.limit)
                if not hits:
                    print(f"nothing matches {shown(repr(args.search), True)}", file=sys.stderr)
                    return 1
                for hit in hits:
                    who = "you" if hit.role == "user" else "answer"
                    title = shown(_one_line(hit.conversation_title), terminal)
                    print(f"{hit.conversation_id:>6}  {title}  ({who} #{hit.message_id})")
                    print(f"        {_one_line(_highlight(hit, terminal))}")
                return 0
            rows = store.list_conversations(limit=args.limit, include_archived=args.all)
            if not rows:
                print("no conversations yet", file=sys.stderr)
                return 0
            print(f"{'ID':>6}  {'UPDATED':<16}  {'TURNS':>5}  TITLE")
            for c in rows:
                updated = _when(c.updated)
                flag = "  [archived]" if c.archived else ""
                print(f"{c.id:>6}  {updated:<16}  {c.turns:>5}  {shown(_one_line(c.title), terminal)}{flag}")
            return 0
    except store_errors() as exc:
        return fail(str(exc))


def export(args) -> int:
    fmt = args.format or ("json" if args.output and args.output.lower().endswith(".json") else "md")
    try:
        with _open(args) as store:
            if fmt == "json":
                text = json.dumps(store.export_json(args.id), ensure_ascii=False, indent=2) + "\n"
            else:
                text = store.export_markdown(args.id)
    except store_errors() as exc:
        return fail(f"{exc} (see `taskdiv-chat history`)" if "no conversation" in str(exc) else str(exc))
    if not args.output or args.output == "-":
        terminal = to_terminal(args)
        if terminal and fmt == "json":
            from ..sanitize import json_for_display

            text = json_for_display(text)  # JSON escapes C0 itself; C1 and bidi overrides it leaves raw
        sys.stdout.write(shown(text, terminal and fmt != "json"))
        return 0
    from ..paths import write_private

    try:
        write_private(Path(args.output).expanduser(), text)  # 0600: a conversation is private
    except OSError as exc:
        return fail(f"cannot write {args.output}: {exc.strerror or exc}")
    print(f"wrote conversation {args.id} to {args.output}", file=sys.stderr)
    return 0


MAX_IMPORT_BYTES = 256 * 1024 * 1024  # far above any real conversation; a bigger file is not one


def import_(args) -> int:
    from ..paths import UnreadableFile, read_text_file

    try:
        raw = sys.stdin.read() if args.file == "-" else read_text_file(Path(args.file).expanduser(), MAX_IMPORT_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}")
    except UnreadableFile as exc:
        return fail(f"{args.file}: {exc}")
    try:  # NaN and Infinity are not JSON, whatever Python's parser accepts
        data = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        why = exc if isinstance(exc, ValueError) else "nested too deeply"
        return fail(f"{args.file} is not JSON ({why}); import reads files from `export --format json`")
    try:
        with _open(args) as store:
            new_id = store.import_json(data)
            title = store.load_conversation(new_id).title
    except store_errors() as exc:
        return fail(f"{args.file}: {exc}")
    print(f"imported as conversation {new_id}: {shown(_one_line(title), to_terminal(args))}")
    return 0


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON value")
