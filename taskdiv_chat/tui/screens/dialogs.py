"""Small modal screens: help, category picker, text prompt (rename), export path, choice list (code blocks)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ... import taxonomy
from ...sanitize import for_display
from .. import bindings, compat
from ..widgets.prompt import CleanInput

_CLOSE = [Binding("escape", "dismiss_none", "Close", id="close_dialog", show=False)]

def dialog_css(name: str, extra: str = "") -> str:
    """The shared look of the dialogs; Textual scopes a screen's DEFAULT_CSS to its own type name."""
    return f"""
    {name} {{ align: center middle; }}
    {name} > Vertical {{ width: 80%; max-width: 100; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1; }}
    {name} .title {{ text-style: bold; color: $primary; margin-bottom: 1; width: 1fr; }}
    {name} .hint {{ color: $text-muted; margin-top: 1; }}
    """ + extra


class _Dialog(ModalScreen):
    BINDINGS = _CLOSE

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class HelpScreen(_Dialog):
    """Every key binding, after the user's [ui.keymap] is applied: keys, what they do (wrapped to
    the width left), binding id; one heading row per place."""

    DEFAULT_CSS = dialog_css("HelpScreen", """
    HelpScreen > Vertical { width: 96%; max-width: 110; height: 90%; }
    HelpScreen DataTable { height: 1fr; }
    """)

    KEYS_WIDTH = 16  # longer key lists wrap

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Keys  (remap any of them by id in [ui.keymap] of config.toml)", classes="title")
            yield DataTable(zebra_stripes=True, cursor_type="row")
            yield Static("ctrl+p opens the command palette with every action · Esc closes", classes="hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        table = self.query_one(DataTable)
        width = table.content_region.width - table.styles.scrollbar_size_vertical  # the list is taller than the box
        if width <= 0:
            return
        keymap = compat.keymap(self.app)
        rows = [(bindings.keys_for(b, keymap), b.tooltip or b.description, b.id or "", group)
                for group, group_bindings in bindings.GROUPS.items() for b in group_bindings]
        keys_width = min(self.KEYS_WIDTH, max(len(keys) for keys, *_ in rows))
        id_width = max(len(binding_id) for _, _, binding_id, _ in rows)
        padding = 2 * table.cell_padding * 3
        action_width = max(12, width - keys_width - id_width - padding)
        table.clear(columns=True)
        table.add_column("keys", width=keys_width)
        table.add_column("action", width=action_width)
        table.add_column("id", width=id_width)
        shown_group = None
        for keys, action, binding_id, group in rows:
            if group != shown_group:
                table.add_row(Content.styled(group, "bold $accent"), "", "")
                shown_group = group
            table.add_row(keys, action, binding_id, height=None)

class CategoryPicker(_Dialog):
    """Pick a category (or "other") for a turn; returns the letter, "other", or None when cancelled."""

    DEFAULT_CSS = dialog_css("CategoryPicker", """
    CategoryPicker OptionList { height: auto; max-height: 20; }
    """)

    def __init__(self, current: str | None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for category in taxonomy.CATEGORIES:
            label = Content.assemble((f" {category.letter} ", f"bold #ffffff on {category.color}"),
                                     f" {category.short} — {category.name}", ("  ✓" if category.letter == self.current else ""))
            options.append(Option(label, id=category.letter))
        options.append(Option(Content.assemble((" ? ", "bold #ffffff on #777777"), " Other — outside the taxonomy (plain regeneration)"),
                              id=taxonomy.OTHER))
        with Vertical():
            yield Label("Category of this message (used by the next regenerate)", classes="title")
            yield OptionList(*options)
            yield Static("Enter picks · Esc keeps the current one", classes="hint")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        ids = [c.letter for c in taxonomy.CATEGORIES] + [taxonomy.OTHER]
        if self.current in ids:
            option_list.highlighted = ids.index(self.current)
        option_list.focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class TextPrompt(_Dialog):
    """Ask for one line of text (rename); returns the text or None."""

    DEFAULT_CSS = dialog_css("TextPrompt")

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Content(self.title_text), classes="title")
            yield CleanInput(for_display(self.value), id="value")
            yield Static("Enter saves · Esc cancels", classes="hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class ExportPrompt(_Dialog):
    """Ask where to export, prefilled with the default path; `write(path)` does the export and
    returns the written path. A failure is shown here, with the path kept for correcting;
    dismisses with the written path, or None when cancelled."""

    DEFAULT_CSS = dialog_css("ExportPrompt", """
    ExportPrompt #error { color: $error; height: auto; display: none; }
    ExportPrompt #error.-shown { display: block; }
    """)

    def __init__(self, default: Path, write) -> None:
        super().__init__()
        self.default = default
        self.write = write

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Export conversation to (.md: Markdown, .json: every branch)", classes="title")
            yield CleanInput(for_display(str(self.default)), id="path")
            yield Static(id="error")
            yield Static("Enter writes (a file only you can read) · Esc cancels", classes="hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        error = self.query_one("#error", Static)
        try:
            path = self.write(Path(event.value.strip()))
        except (OSError, ValueError) as exc:
            error.update(Content(for_display(f"Not exported: {exc}")))
            error.add_class("-shown")
            return
        self.dismiss(path)


class ChoiceList(_Dialog):
    """Pick one of several texts (e.g. which code block to copy); returns its index or None."""

    DEFAULT_CSS = dialog_css("ChoiceList", """
    ChoiceList OptionList { height: auto; max-height: 20; }
    """)

    def __init__(self, title: str, choices: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield OptionList(*[Option(Content(for_display(c)), id=str(i)) for i, c in enumerate(self.choices)])

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))


class TextViewer(_Dialog):
    """A scrollable read-only text (e.g. an exported file's path and preview)."""

    DEFAULT_CSS = dialog_css("TextViewer")

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            with VerticalScroll():
                yield Static(Content(for_display(self.text)))
