"""A small JSON file in the data dir remembering UI choices (theme, last conversation).

The user's config.toml is never rewritten: choices made in the app live here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..paths import data_dir, ensure_data_dir


def state_path() -> Path:
    # paths, not the config (pydantic): the app reads this file before its first paint.
    return data_dir() / "ui-state.json"


def load_state() -> dict:
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(**changes) -> None:
    """Merge `changes` into the file (written atomically: a crash never leaves half a file)."""
    data = {**load_state(), **changes}
    path = state_path()
    try:
        ensure_data_dir()  # 0700, as on every other path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # remembering a choice is a convenience; failing to must not break the app


def initial_theme(config_theme: str) -> str:
    """The theme picked in the app, unless the config's theme was changed since that pick."""
    state = load_state()
    if state.get("theme") and state.get("config_theme") == config_theme:
        return state["theme"]
    return config_theme


def remembered_theme() -> dict | None:
    """The fields of the theme in use at the last run (textual.theme.Theme(**fields)), or None.

    Lets the app paint its first frame in the right colours before the config and the
    theme files are read."""
    fields = load_state().get("theme_fields")
    return fields if isinstance(fields, dict) and fields.get("name") else None
