"""Every key binding of the app, each with an id so [ui.keymap] in the config can remap it.

    [ui.keymap]
    regenerate = "ctrl+r,f9"
    newline = "ctrl+j"

The widgets take their BINDINGS from here; the help screen lists them from here.
"""

from __future__ import annotations

import re

from textual.binding import Binding

# Anywhere in the chat screen, also while the message input has focus.
CHAT = [
    Binding("ctrl+r", "regenerate", "Regenerate", id="regenerate",
            tooltip="Regenerate the last answer with the current strategy"),
    Binding("ctrl+g", "brainstorm", "Brainstorm", id="brainstorm",
            tooltip="Generate several variants of the last answer at once"),
    Binding("f8", "send_all", "Send to all", id="send_all", show=False,
            tooltip="Send the message to every [compare] backend at once; the answers side by side"),
    Binding("escape", "cancel", "Stop", id="cancel", tooltip="Stop the running answer (the partial answer is kept)"),
    Binding("ctrl+t", "pick_category", "Category", id="pick_category",
            tooltip="Override the category of the last message"),
    Binding("alt+left", "variant(-1)", "Prev variant", id="prev_variant", show=False,
            tooltip="Show the previous variant of the last answer"),
    Binding("alt+right", "variant(1)", "Next variant", id="next_variant", show=False,
            tooltip="Show the next variant of the last answer"),
    Binding("f3", "badge_detail", "Diversity", id="badge_detail",
            tooltip="Details of the diversity badge of the last answer"),
    Binding("f4", "homogenization", "Variants", id="homogenization",
            tooltip="Variants side by side and how often regeneration gave something new"),
    Binding("f5", "retry", "Retry", id="retry", show=False, tooltip="Retry the last failed answer"),
    Binding("alt+c", "copy_answer", "Copy answer", id="copy_answer", show=False,
            tooltip="Copy the last answer to the clipboard"),
    Binding("alt+k", "copy_code", "Copy code", id="copy_code", show=False,
            tooltip="Copy a code block of the last answer to the clipboard"),
    Binding("ctrl+n", "new_conversation", "New", id="new_conversation", tooltip="Start a new conversation"),
    Binding("ctrl+b", "toggle_sidebar", "Sidebar", id="toggle_sidebar", show=False,
            tooltip="Show or hide the conversation list"),
    Binding("ctrl+f", "search", "Search", id="search", show=False, tooltip="Search the conversations"),
    Binding("ctrl+s", "export('markdown')", "Export", id="export", show=False,
            tooltip="Export the conversation as Markdown"),
    Binding("ctrl+l", "focus_input", "Input", id="focus_input", show=False, tooltip="Move the focus to the input"),
]

# App-wide.
APP = [
    Binding("f1", "help", "Help", id="help", tooltip="List every key"),
    Binding("ctrl+q", "quit", "Quit", id="quit", priority=True, tooltip="Quit (drafts are saved)"),
]

# The message input. Enter sends; the newline keys work in every terminal
# (shift+enter only reaches apps in terminals with the kitty keyboard protocol; alt+enter arrives as ESC CR
# from tmux, xterm and VTE, which tui/compat/terminal.py reads as alt+enter; ctrl+j is LF everywhere).
PROMPT = [
    Binding("enter", "send", "Send", id="send", priority=True, tooltip="Send the message"),
    Binding("ctrl+j,alt+enter,shift+enter", "newline", "Newline", id="newline", show=False,
            tooltip="Insert a new line"),
    Binding("up", "history(-1)", "History", id="history_prev", show=False,
            tooltip="Previous sent message (on the first line)"),
    Binding("down", "history(1)", "History", id="history_next", show=False,
            tooltip="Next sent message (on the last line)"),
]

# A focused answer.
MESSAGE = [
    Binding("left", "variant(-1)", "Prev", id="message_prev_variant", show=False, tooltip="Previous variant"),
    Binding("right", "variant(1)", "Next", id="message_next_variant", show=False, tooltip="Next variant"),
    Binding("c", "copy", "Copy", id="message_copy", tooltip="Copy this answer"),
    Binding("k", "copy_code", "Copy code", id="message_copy_code", tooltip="Copy a code block of this answer"),
    Binding("d", "detail", "Diversity", id="message_detail", tooltip="Details of this answer's diversity badge"),
]

# The conversation list.
SIDEBAR = [
    Binding("f2", "rename", "Rename", id="rename", tooltip="Rename the selected conversation"),
    Binding("delete", "delete", "Delete", id="delete", tooltip="Delete the selected conversation"),
    Binding("ctrl+z", "undo_delete", "Undo delete", id="undo_delete", tooltip="Bring back the last deleted conversation"),
]

# A focused answer of a comparison.
COMPARE = [
    Binding("enter", "choose", "Continue from this", id="compare_choose",
            tooltip="Continue the conversation from this model's answer"),
]

GROUPS = {"Chat": CHAT, "App": APP, "Message input": PROMPT, "Focused answer": MESSAGE,
          "Compared answer": COMPARE, "Conversation list": SIDEBAR}


def all_ids() -> set[str]:
    return {b.id for group in GROUPS.values() for b in group if b.id}


def unknown_keymap_ids(keymap: dict[str, str]) -> list[str]:
    return sorted(set(keymap) - all_ids())


def keys_for(binding: Binding, keymap: dict[str, str]) -> str:
    """The keys a binding answers to once the user's keymap is applied, for display."""
    keys = keymap.get(binding.id or "", binding.key)
    return ", ".join(k.strip() for k in keys.split(","))


def keys_for_id(app, binding_id: str, first: bool = False) -> str:
    """The keys of a binding (by id) under the app's live keymap: every key a UI string names comes
    from here, so a remapped key is never shown under its old name. first: only the first key."""
    from .compat import keymap

    binding = next(b for group in GROUPS.values() for b in group if b.id == binding_id)
    keys = [_KEY_NAMES.get(k, k.upper() if re.fullmatch(r"f\d+", k) else k)
            for k in keys_for(binding, keymap(app)).split(", ")]
    return keys[0] if first else ", ".join(keys)


_KEY_NAMES = {"escape": "Esc", "enter": "Enter", "up": "↑", "down": "↓"}  # as people write them in prose
