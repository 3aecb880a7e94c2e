"""The Textual app: one factory (TaskdivApp) for the command line and the tests.

Start-up paints first: the backend client, the store, the classifier and the
embedding model are created after the first frame (heavy ones in threads).
`taskdiv-chat` even loads the config after it: TaskdivApp(None, ...) starts in
the "boot" mode (tui/boot.py's BootScreen) and switches to the "chat" mode, removing
the boot mode, once the config is read.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.screen import Screen

from ..sanitize import for_display
from . import bindings
from .state import initial_theme, load_state, remembered_theme, save_state

if TYPE_CHECKING:
    from ..config import Settings


# The palette's line for each regeneration strategy (diversity/strategies.py says how each one asks).
STRATEGY_HELP = {
    "temperature": "the same request again; sampling randomness does the rest",
    "general-icr": "earlier answers stay in context, then \"Can you generate a different answer?\"",
    "anchored-icr": "earlier answers in context, asked to differ the way this task category needs",
    "general-system": "several answers in one call, asked to represent diverse values",
    "anchored-system": "several answers in one call, told how this task category should vary",
}


class TaskdivApp(App):
    TITLE = "taskdiv-chat"
    CSS_PATH = "app.tcss"
    BINDINGS = bindings.APP
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, settings: Settings | None, backend_name: str | None = None, *, store=None,
                 conversation_id: int | None = None, new_chat: bool = False, warm_up: bool = True,
                 config_path: str | None = None) -> None:
        """settings: the loaded config; backend_name: None for default_backend.
        settings=None starts deferred: the first frame is painted before the config (config_path, None for
        the default one) is loaded, and a broken config ends the app with return code 2 and
        `config_error` set (run_app prints it).
        store: a taskdiv_chat.store.Store (default: the one in the data dir, opened after the first paint).
        conversation_id: open this one (default: the last one used, unless new_chat).
        warm_up: load the classifier and embedding model in the background right after start."""
        self.DEFAULT_MODE = "chat" if settings is not None else "boot"  # read by App.__init__
        super().__init__()
        self.add_mode("chat", _chat_screen)
        if settings is None:
            from .boot import BootScreen

            self.add_mode("boot", BootScreen)
        self.handover: tuple[str, str, bool] | None = None  # what was typed on the boot screen
        self.started = time.monotonic()
        self.store = store
        self._owns_store = store is None
        self.start_conversation_id = conversation_id
        self.new_chat = new_chat
        self.warm_up = warm_up
        self.theme_errors: list[str] = []
        self.config_error: str | None = None
        self.exiting = False
        self.settings = settings
        if settings is None:
            self._config_path, self._wanted_backend = config_path, backend_name
            self._use_remembered_theme()
        else:
            self._apply_settings(settings, backend_name)

    def _apply_settings(self, settings: Settings, backend_name: str | None) -> None:
        self.settings = settings
        self.backend_name, self.backend_config = settings.backend(backend_name)
        self.strategy = settings.regenerate.strategy
        self._register_themes()
        if settings.ui.keymap:
            self.set_keymap(settings.ui.keymap)

    # --- themes ----------------------------------------------------------------------------

    def _use_remembered_theme(self) -> None:
        """Deferred start: paint in the theme of the last run until the config says otherwise."""
        from textual.theme import Theme

        fields = remembered_theme()
        try:
            theme = Theme(**fields) if fields else None
        except (TypeError, ValueError):  # a hand-edited or outdated state file
            theme = None
        if theme is not None:
            self.register_theme(theme)
            self.theme = theme.name

    def _register_themes(self) -> None:
        from .themes import load_themes

        themes, self.theme_errors = load_themes()
        for theme in themes:
            self.register_theme(theme)
        wanted = initial_theme(self.settings.ui.theme)
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme_errors.append(f"theme {wanted!r} not found; using textual-dark "
                                     f"(known: {', '.join(sorted(self.available_themes))})")
            self.theme = "textual-dark"
        self._config_theme = self.settings.ui.theme
        self._remember_theme_fields()

    def _remember_theme_fields(self) -> None:
        """Keep the current theme's colours for the next deferred start (written only when they change)."""
        fields = asdict(self.current_theme)
        if load_state().get("theme_fields") != fields:
            save_state(theme_fields=fields)

    def _theme_changed(self, theme: str) -> None:
        save_state(theme=theme, config_theme=self._config_theme)
        self._remember_theme_fields()

    # --- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.warm_up:
            from .services import start_loading_models

            self.call_after_refresh(start_loading_models)
        if self.settings is None:
            self.call_after_refresh(self._load_settings)
        else:
            self._settings_ready()

    def _settings_ready(self) -> None:
        self.watch(self, "theme", self._theme_changed, init=False)
        for message in self.theme_errors:
            self.notify(message, title="Theme", severity="warning", timeout=8)
        unknown = bindings.unknown_keymap_ids(self.settings.ui.keymap)
        if unknown:
            self.notify(f"[ui.keymap] has unknown binding ids: {', '.join(unknown)} "
                        f"({bindings.keys_for_id(self, 'help', first=True)} lists the ids)",
                        title="Config", severity="warning", timeout=10)

    @work(thread=True, group="boot")
    def _load_settings(self) -> None:
        """Deferred start, after the first paint: load the config, and import the chat screen meanwhile."""
        from .. import config

        try:
            settings, name = config.load_for_backend(self._config_path, self._wanted_backend)
        except config.ConfigError as exc:
            self.call_from_thread(self._config_failed, str(exc))
            return
        # Imported here, off the UI thread: what the chat screen needs first (httpx comes with the client).
        from .. import store  # noqa: F401
        from ..backends import local, openai  # noqa: F401
        from . import chat  # noqa: F401

        self.call_from_thread(self._settings_loaded, settings, name)

    def _config_failed(self, message: str) -> None:
        self.config_error = message
        self.exit(return_code=2)

    async def _settings_loaded(self, settings: Settings, backend_name: str) -> None:
        from .boot import BootScreen

        if self.exiting:  # quit while the config was loading
            return
        self._apply_settings(settings, backend_name)
        self._settings_ready()
        boot = self.screen
        self.handover = boot.typed() if isinstance(boot, BootScreen) else None
        await self.switch_mode("chat")
        await self.remove_mode("boot")

    def open_store(self):
        """The store, opened on first use (after the first paint)."""
        if self.store is None:
            from ..store import Store

            self.store = Store(secrets=self.settings.secret_values())
        return self.store

    async def action_quit(self) -> None:
        if self.chat_screen is not None:
            self.chat_screen._save_draft_now()  # nothing typed is lost
        await super().action_quit()

    def exit(self, result=None, return_code: int = 0, message=None) -> None:
        # Textual tears the screens down before it cancels the workers: a start-up worker still
        # mounting the conversation meanwhile would crash the exit (NoMatches, MountError). Cancel first.
        self.exiting = True  # and start nothing new meanwhile
        self.workers.cancel_all()
        super().exit(result, return_code, message)

    async def on_unmount(self) -> None:
        if self.store is not None and self._owns_store:
            self.store.close()

    # --- what reaches the terminal, and what comes from it ---------------------------------------

    def get_driver_class(self):
        """On Linux and macOS, a driver whose pastes cannot turn into key presses (tui/compat/terminal.py);
        on a Textual it was not tested against, Textual's own driver."""
        from .compat import safe_driver

        return safe_driver(super().get_driver_class())

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Plain text by default, made safe to show: notifications quote servers, files and exceptions."""
        super().notify(for_display(message), title=for_display(title), severity=severity, timeout=timeout,
                       markup=markup)

    def _fatal_error(self) -> None:
        """Textual's crash report without local variables (the HTTP client's hold the API key) and with
        every configured secret masked in what is left (an exception message may quote a header)."""
        import rich
        from rich.segment import Segments
        from rich.text import Text
        from rich.traceback import Traceback

        self.bell()
        with self.console.capture() as capture:
            self.console.print(Traceback(show_locals=False, width=None, suppress=[rich]))
        from ..redact import redact

        report = redact(capture.get(), self.settings.secret_values() if self.settings is not None else ())
        self._exit_renderables.append(Segments(self.console.render(Text.from_ansi(report), self.console.options)))
        self._close_messages_no_wait()

    # --- palette ---------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        from ..config import STRATEGIES

        yield from super().get_system_commands(screen)
        chat = self.chat_screen
        if chat is None:
            return
        yield SystemCommand("Regenerate", f"Regenerate the last answer ({self.strategy})", chat.action_regenerate)
        yield SystemCommand(
            "Brainstorm variants", f"Generate {self.settings.regenerate.brainstorm_n} variants of the last answer at once",
            chat.action_brainstorm)
        names = ", ".join(self.settings.compare.backends) or "none: set [compare] backends"
        yield SystemCommand("Send to all models", f"Send the message to every compare backend ({names}) "
                            f"({chat.key_for('send_all')})", chat.action_send_all)
        for strategy in STRATEGIES:
            mark = " (current)" if strategy == self.strategy else ""
            yield SystemCommand(f"Strategy: {strategy}{mark}",
                                f"Regenerate and brainstorm: {STRATEGY_HELP.get(strategy, strategy)}",
                                lambda s=strategy: self.set_strategy(s))
        commands = [  # (title, what it does, binding id of its key or None, action)
            ("Stop answer", "Stop the running answer", "cancel", chat.action_cancel),
            ("Retry", "Retry the last failed answer", "retry", chat.action_retry),
            ("Category override", "Change the category of the last message", "pick_category",
             chat.action_pick_category),
            ("Previous variant", "Show the previous variant", "prev_variant", lambda: chat.action_variant(-1)),
            ("Next variant", "Show the next variant", "next_variant", lambda: chat.action_variant(1)),
            ("Diversity detail", "Groups, pairwise verdicts and metrics of the last answer", "badge_detail",
             chat.action_badge_detail),
            ("Homogenization view", "Variants side by side; how often regeneration gave something new",
             "homogenization", chat.action_homogenization),
            ("Copy answer", "Copy the last answer to the clipboard", "copy_answer", chat.action_copy_answer),
            ("Copy code block", "Copy a code block of the last answer", "copy_code", chat.action_copy_code),
            ("New conversation", "Start a new conversation", "new_conversation", chat.action_new_conversation),
            ("Search conversations", "Search every message", "search", chat.action_search),
            ("Rename conversation", "Rename the current conversation", None, chat.action_rename),
            ("Delete conversation", f"Delete the current conversation (undo: {chat.key_for('undo_delete')} in the "
             f"list)", None, chat.action_delete),
            ("Export as Markdown", "Write the conversation to a .md file", "export",
             lambda: chat.action_export("markdown")),
            ("Export as JSON", "Write the conversation, every branch, to a .json file", None,
             lambda: chat.action_export("json")),
            ("Toggle sidebar", "Show or hide the conversation list", "toggle_sidebar", chat.action_toggle_sidebar),
            ("Help: keys", "List every key and its binding id", "help", self.action_help),
        ]
        for title, help_text, binding_id, action in commands:
            keys = f" ({chat.key_for(binding_id)})" if binding_id else ""
            yield SystemCommand(title, help_text + keys, action)

    @property
    def chat_screen(self):
        from .chat import ChatScreen

        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                return screen
        return None

    def set_strategy(self, strategy: str) -> None:
        self.strategy = strategy
        if self.chat_screen is not None:
            self.chat_screen.status.set_strategy(strategy)
        self.notify(f"Regenerate now uses {strategy}", timeout=3)

    def action_help(self) -> None:
        from .screens.dialogs import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def _chat_screen() -> Screen:
    from .chat import ChatScreen

    return ChatScreen()


def run_app(args) -> int:
    """Entry point for `taskdiv-chat` with no subcommand (args: .config, .backend).

    The config is loaded after the first paint; a broken one ends the app with the same
    one-line message and exit status 2 as the subcommands."""
    app = TaskdivApp(None, getattr(args, "backend", None), config_path=getattr(args, "config", None))
    app.run()
    if app.config_error is not None:
        print(f"taskdiv-chat: config error: {app.config_error}", file=sys.stderr)
        return 2
    return app.return_code or 0
