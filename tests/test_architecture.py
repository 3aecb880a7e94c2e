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
