"""Every use of Textual's private API, behind one door.

Textual is pinned (pyproject.toml), and what is private may change in any release.
SUPPORTED lists the versions these uses were written and tested against. On any
other version the app still works: answers render with the stock Markdown widget
(slower for long lists, same text) and the terminal is read by Textual's own driver
(pastes are not guarded against turning into keys).
Nothing outside this package may import textual's private modules or attributes
(tests/test_architecture.py checks it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

SUPPORTED = ("8.2.8",)


@cache
def installed_version() -> str:
    """The installed Textual's version. The name of the one textual-*.dist-info folder beside the package
    says it without importing importlib.metadata, which costs ~40 ms before the first paint; with none
    or several (a stale one), importlib.metadata says it."""
    import textual

    found = list(Path(textual.__file__).resolve().parent.parent.glob("textual-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len("textual-"):-len(".dist-info")]
    from importlib.metadata import version

    return version("textual")


def known(textual_version: str | None = None) -> bool:
    """Whether the installed Textual is one the private uses here were tested against."""
    return (textual_version or installed_version()) in SUPPORTED


def markdown_widget(textual_version: str | None = None) -> type:
    """The Markdown class answers are rendered with: FastMarkdown on a known Textual, else the stock one."""
    if known(textual_version):
        from .markdown_fast import FastMarkdown

        return FastMarkdown
    from textual.widgets import Markdown

    return Markdown


async def appends_done(markdown) -> None:
    """Wait until a Markdown widget has mounted every block it is appending (Markdown.append holds
    the widget's lock while it does; a MarkdownStream stopped mid-append goes on appending)."""
    lock = getattr(markdown, "lock", None)
    if lock is not None:
        async with lock:
            pass


def safe_driver(driver_class: type) -> type:
    """The paste-safe Linux driver (compat.terminal) in place of Textual's on a known Textual."""
    if known() and f"{driver_class.__module__}.{driver_class.__qualname__}" == \
            "textual.drivers.linux_driver.LinuxDriver":
        from .terminal import SafeLinuxDriver

        return SafeLinuxDriver
    return driver_class


def keymap(app) -> dict[str, str]:
    """The user's remapped keys, binding id -> keys, as App.set_keymap stored them."""
    found = getattr(app, "_keymap", None)
    return dict(found) if isinstance(found, dict) else {}
