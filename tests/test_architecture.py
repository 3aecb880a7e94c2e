"""The core never imports textual: only taskdiv_chat/tui/ may."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import taskdiv_chat

PACKAGE = Path(taskdiv_chat.__file__).parent


def _core_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "tui" not in p.relative_to(PACKAGE).parts]


def test_core_sources_do_not_import_textual():
    offenders = []
    for path in _core_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tui":
                names = ["tui"]
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names
                          if n.split(".")[0] in ("textual", "rich_pixels")]
    assert len(_core_files()) > 10
    assert offenders == []


def test_importing_every_core_module_leaves_textual_unloaded():
    modules = [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "taskdiv_chat.")
               if ".tui" not in m.name and not m.name.endswith("__main__")]
    assert "taskdiv_chat.config" in modules
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --- layers: cli -> tui -> conversation service -> core ---------------------------------------------

LAYERS = {  # a module's layer, by its first part under taskdiv_chat/; everything else is the core
    "cli": 4, "__main__": 4, "commands": 4,
    "tui": 3,
    "conversation": 2,
}
CORE = 1


def _layer(part: str) -> int:
    return LAYERS.get(part, CORE)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(first part under taskdiv_chat, line) of every taskdiv_chat module a file imports."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(here[:-1])[: len(here) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not target else [target]
            elif (node.module or "").startswith("taskdiv_chat"):
                names = [node.module.split(".")[1:] + [a.name for a in node.names][:1]]
            else:
                continue
            found += [(n[0], node.lineno) for n in names if n]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], node.lineno) for a in node.names
                      if a.name.startswith("taskdiv_chat.")]
    return found


def test_layers_only_import_downwards():
    """The core never imports the service, the TUI or the commands; the service never imports the TUI or
    the commands; the TUI never imports the commands."""
    offenders = []
    files = list(PACKAGE.rglob("*.py"))
    for path in files:
        own = _layer(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
        for part, line in _imports(path):
            if _layer(part) > own:
                offenders.append(f"{path.relative_to(PACKAGE)}:{line} imports {part}")
    assert any(part == "conversation" for p in files for part, _ in _imports(p))  # the resolver sees imports
    assert offenders == []


def test_private_textual_api_is_used_only_in_tui_compat():
    """textual's private modules and attributes are reached only from taskdiv_chat/tui/compat/."""
    private_attributes = {"_keymap", "_blocks", "_markdown", "_token", "lock"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if parts[:2] == ("tui", "compat"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            module = node.module if isinstance(node, ast.ImportFrom) and node.level == 0 else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {n}" for n in names
                          if n.startswith("textual.") and any(p.startswith("_") for p in n.split("."))]
            if isinstance(node, ast.Attribute) and node.attr in private_attributes and parts[0] == "tui":
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: .{node.attr}")
    assert offenders == []
