"""The diversity badge's detail, and the homogenization view (variants side by side, per-category novelty)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from ... import taxonomy
from ...conversation import usable
from ...sanitize import for_display
from .. import bindings, services
from .dialogs import dialog_css

# Colours told apart on dark and light themes; group k of a turn gets GROUP_COLORS[k].
GROUP_COLORS = ("#4c8dd6", "#d1508a", "#3aa58a", "#d67a3c", "#8e6cd1", "#c9a227", "#5a9bb0", "#7fa83a",
                "#b05a5a", "#6b7fd6")
_CLOSE = [Binding("escape", "close", "Close", id="close_view", show=False)]


def _category_line(report) -> str:
    category = taxonomy.get(report.category)
    name = f"{category.letter} {category.name}" if category else "other (outside the taxonomy)"
    wants = {"same": "wants the same answer every time",
             "same-answer-new-strategy": "wants the same final answer by different strategies",
             "different": "wants functionally different answers"}.get(report.wants, report.wants)
    return f"{name}: {wants}"


def _shown(text: str) -> Content:
    """Plain text for the screen: answers, reasons and verdicts are a model's words."""
    return Content(for_display(text))


def _preview(text: str, width: int = 60) -> str:
    line = " ".join(for_display(text).split())
    return line[:width] + ("…" if len(line) > width else "")


def _number(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


class DetailScreen(ModalScreen):
    """Groups, which earlier answer the newest duplicates, the pairwise verdicts and similarities, generic metrics."""

    BINDINGS = _CLOSE + [Binding("f4", "variants", "Variants", id="detail_variants", show=False)]
    DEFAULT_CSS = dialog_css("DetailScreen", """
    DetailScreen > Vertical { max-width: 110; height: 90%; }
    DetailScreen VerticalScroll { height: 1fr; }
    DetailScreen .section { text-style: bold; margin-top: 1; }
    DetailScreen .good { color: $success; } DetailScreen .warning { color: $warning; } DetailScreen .bad { color: $error; }
    DetailScreen DataTable { height: auto; max-height: 14; margin-top: 1; }
    """)

    def __init__(self, turn, report) -> None:
        super().__init__()
        self.turn = turn
        self.report = report

    def compose(self) -> ComposeResult:
        report = self.report
        variants = usable(self.turn.variants)
        with Vertical():
            yield Label(f"Diversity of {report.n} answers  ·  {_category_line(report)}", classes="title")
            with VerticalScroll():
                yield Static(_shown(f"{services.badge_label(report)} — {report.reason}"), classes=report.status)
                yield Static(_shown(f"judge: {report.judge or '?'}"))
                yield Static("Functional groups (answers a user would find redundant)", classes="section")
                for k, group in enumerate(report.groups):
                    members = ", ".join(str(i + 1) for i in group)
                    first = variants[group[0]].text if group[0] < len(variants) else ""
                    yield Static(Content.assemble((f" {k + 1} ", f"bold #ffffff on {GROUP_COLORS[k % len(GROUP_COLORS)]}"),
                                                  f" answers {members}: {_preview(first)}"))
                if report.cross_model:  # a comparison: which models said the same thing
                    cross = report.cross_model
                    yield Static(_shown(f"Across models: {cross['badge_text']} — {cross['reason']}"),
                                 classes=f"section {cross['status']}")
                    for k, labels in enumerate(cross["groups"]):
                        yield Static(Content.assemble((f" {k + 1} ", f"bold #ffffff on {GROUP_COLORS[k % len(GROUP_COLORS)]}"),
                                                      " " + for_display(", ".join(labels))))
                    yield Static(_shown(f"pairs of answers from different models that were functionally the same: "
                                        f"{cross['same_pairs']} of {cross['pairs']}"))
                if report.newest_is_new is not None:
                    newest = report.n
                    text = (f"answer {newest} (newest) is functionally new" if report.newest_is_new else
                            f"answer {newest} (newest) duplicates answer {report.newest_duplicates + 1}")
                    yield Static(Content(text), classes="section")
                if any(report.final_answers):
                    finals = ", ".join(f"{i + 1}: {f or '?'}" for i, f in enumerate(report.final_answers))
                    agree = {True: "agree", False: "DIFFER", None: "unchecked"}[report.answers_agree]
                    yield Static(_shown(f"final answers ({agree}): {finals}"))
                yield Static("Pairwise: = equivalent / ≠ different, with embedding similarity", classes="section")
                yield DataTable(id="pairwise", cursor_type="cell", zebra_stripes=True)
                if report.reasons:
                    yield Static("Why", classes="section")
                    for pair, why in report.reasons.items():
                        i, j = (int(x) + 1 for x in pair.split(","))
                        yield Static(_shown(f"{i} vs {j}: {why}"))
                yield Static("Generic metrics (word and embedding distance; blind to the task)", classes="section")
                yield Static(_shown(self._generic_text()))
            yield Static(f"Esc closes · {bindings.keys_for_id(self.app, 'homogenization')} the variants side by side",
                         classes="hint")

    def _generic_text(self) -> str:
        generic = dict(self.report.generic or {})
        newest = generic.pop("newest", None)
        lines = [f"{k.replace('_', ' ')}: {_number(v)}" for k, v in generic.items()]
        if newest:
            lines.append("newest vs the earlier ones: " + ", ".join(
                f"{k.replace('_', ' ')} {_number(v + 1 if k == 'nearest' else v)}" for k, v in newest.items()))
        return "\n".join(lines)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        n = self.report.n
        table.add_columns("", *[str(j + 1) for j in range(n)])
        for i in range(n):
            cells = []
            for j in range(n):
                if i == j:
                    cells.append("—")
                else:
                    mark = "=" if self.report.pairwise[i][j] else "≠"
                    cells.append(f"{mark} {self.report.similarity[i][j]:.2f}")
            table.add_row(str(i + 1), *cells)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_variants(self) -> None:
        """F4, as the hint says: this view closes and the variants side by side open."""
        chat = self.app.chat_screen
        self.dismiss(None)
        if chat is not None:
            chat.action_homogenization()


class HomogenizationScreen(ModalScreen):
    """The current turn's variants side by side, coloured by functional group, and per category how often
    regeneration produced something functionally new in this conversation."""

    BINDINGS = _CLOSE
    DEFAULT_CSS = dialog_css("HomogenizationScreen", """
    HomogenizationScreen > Vertical { width: 96%; max-width: 200; height: 94%; }
    HomogenizationScreen #columns { height: 1fr; }
    HomogenizationScreen .column { width: 1fr; border: round $panel; padding: 0 1; }
    HomogenizationScreen .column-head { text-style: bold; color: #ffffff; padding: 0 1; }
    HomogenizationScreen #novelty, HomogenizationScreen #overlap { height: auto; max-height: 12; margin-top: 1; }
    """)

    def __init__(self, conversation, turn_id: int | None, cross_model: list | None = None) -> None:
        super().__init__()
        self.conversation = conversation
        self.cross_model = cross_model or []  # (letter, CrossModel dict) of every comparison in the history
        self.turn = next((t for t in conversation.turns if t.user.id == turn_id), None)

    def compose(self) -> ComposeResult:
        turn = self.turn
        variants = usable(turn.variants) if turn else []
        report = services.report_from_variants(turn.variants) if turn else None
        group_of = {}
        if report is not None and report.n == len(variants):
            group_of = {i: k for k, group in enumerate(report.groups) for i in group}
        with Vertical():
            title = f"Variants of: {_preview(turn.user.text, 70)}" if turn else "No turn yet"
            yield Label(Content(title), classes="title")
            if report is not None:
                yield Static(_shown(f"{services.badge_label(report)} — {report.reason}"))
            elif len(variants) > 1:
                yield Static("not measured yet (the badge is still working, or regenerate once more)")
            with Horizontal(id="columns"):
                for i, variant in enumerate(variants):
                    group = group_of.get(i)
                    colour = GROUP_COLORS[group % len(GROUP_COLORS)] if group is not None else "#777777"
                    label = f"answer {i + 1}" + (f" · group {group + 1}" if group is not None else "")
                    with VerticalScroll(classes="column"):
                        head = Static(Content(label), classes="column-head")
                        head.styles.background = colour
                        yield head
                        yield Static(_shown(variant.text))
            yield Static("Regeneration in this conversation: how often a regenerated answer was functionally new",
                         classes="title")
            yield DataTable(id="novelty", cursor_type="row", zebra_stripes=True)
            yield Static("Across models, whole history: how often two models gave the same answer",
                         classes="title")
            yield DataTable(id="overlap", cursor_type="row", zebra_stripes=True)
            yield Static("Esc closes", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("category", "turns", "regenerations", "functionally new", "share")
        for letter, stats in services.novelty_by_category(self.conversation).items():
            category = taxonomy.get(letter)
            name = f"{category.letter} {category.short}" if category else "other"
            share = f"{stats['new'] / stats['regenerations']:.0%}" if stats["regenerations"] else "—"
            table.add_row(name, stats["turns"], stats["regenerations"], stats["new"], share)
        if not table.row_count:
            table.add_row("no measured regenerations yet", "", "", "", "")
        from ...diversity.crossmodel import overlap

        table = self.query_one("#overlap", DataTable)
        table.add_columns("category", "comparisons", "model pairs", "functionally same", "overlap")
        for letter, stats in overlap(self.cross_model).items():
            category = taxonomy.get(letter)
            name = f"{category.letter} {category.short}" if category else "other"
            share = f"{stats['same'] / stats['pairs']:.0%}" if stats["pairs"] else "—"
            table.add_row(name, stats["comparisons"], stats["pairs"], stats["same"], share)
        if not table.row_count:
            table.add_row(f"none yet ({bindings.keys_for_id(self.app, 'send_all')}: send to all)", "", "", "", "")

    def action_close(self) -> None:
        self.dismiss(None)
