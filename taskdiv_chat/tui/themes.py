"""Themes: TOML files shipped with the package (from the repo's themes/) and in the user's config dir.

A theme file holds the fields of textual.theme.Theme (name, primary, ..., dark,
[variables]). A broken file is reported and skipped; it never stops the app.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

from ..config import bundled_themes_dir, user_themes_dir

_FIELDS = {f.name for f in fields(Theme)}


def theme_dirs() -> list[Path]:
    """Bundled first, so a user's theme of the same name wins."""
    return [bundled_themes_dir(), user_themes_dir()]


def load_theme_file(path: Path) -> Theme:
    """Read one theme; raises ValueError with the file name when it is not a valid theme."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown theme field(s): {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ValueError(f"{path}: a theme needs at least 'primary'")
    try:
        theme = Theme(**data)
        theme.to_color_system()  # parses every colour now, not at the first paint
    except Exception as exc:  # bad colour strings raise various errors
        raise ValueError(f"{path}: {exc}") from None
    return theme


def load_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """All themes found, and one message per file that could not be loaded."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors
