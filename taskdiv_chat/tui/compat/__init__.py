"""Every use of Textual's private API, behind one door.

Textual is pinned (pyproject.toml); what is private may change in any release.
`SUPPORTED` lists the versions these uses were written and tested against: on
another version the fast Markdown falls back to the stock widget
(compat.markdown) and the keymap is read through what is public.
"""

from __future__ import annotations

from importlib.metadata import version

SUPPORTED = ("8.2.8",)
TEXTUAL_VERSION = version("textual")
KNOWN = TEXTUAL_VERSION in SUPPORTED


def keymap(app) -> dict[str, str]:
    """The user's remapped keys, binding id -> keys (App._keymap, set by App.set_keymap)."""
    found = getattr(app, "_keymap", None) if KNOWN else getattr(app, "_keymap", None)
    return dict(found) if isinstance(found, dict) else {}
