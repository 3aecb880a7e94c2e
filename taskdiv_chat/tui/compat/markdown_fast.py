"""A Markdown widget that builds fewer widgets for the same look.

Textual's Markdown mounts four widgets per list item (a row, the bullet, a column,
the paragraph): in a long answer, lists are most of the widgets, and mounting and
laying them out is most of the render time. Here a list item that is one plain
paragraph (the usual case) is one widget that draws its bullet and hangs the
wrapped lines under the text; other items (nested lists, several paragraphs) keep
Textual's layout. Code blocks are highlighted once, not again on mount. Paragraphs, headers and list items
of one kind side by side work out their inline styles (em, strong, ...) once.
"""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content, Span
from textual.css.styles import RulesMap
from textual.selection import Selection
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widgets import Markdown
from textual.widgets._markdown import (MarkdownBlock, MarkdownBullet, MarkdownBulletList, MarkdownFence, MarkdownH1,
                                       MarkdownH2, MarkdownH3, MarkdownH4, MarkdownH5, MarkdownH6, MarkdownListItem,
                                       MarkdownOrderedList, MarkdownOrderedListItem, MarkdownParagraph)

from .layout import HeightFromWidth

# The first block of each kind styled in this turn of the event loop (see SharedInlineStyles), and the loop
# that empties it on its next turn
_first_of_kind: dict[tuple, MarkdownBlock] = {}
_emptied_by: list = [None]


def _empty_first_of_kind() -> None:
    _first_of_kind.clear()
    _emptied_by[0] = None


class SharedInlineStyles:
    """For a Markdown block: its inline styles (the em, strong, ... component classes) copied from the first
    block of the same kind styled in the same turn of the event loop, instead of worked out again.

    Textual works each component class out with an uncached stylesheet pass: 4-5 per block, most of the
    stylesheet cost of mounting a long answer. Blocks of one Markdown widget whose path to it has the same
    types, ids, classes and state (hover, focus), styled in one pass (a mount, a theme change: nothing changes
    between them), get the same styles, unless the rules depend on position (:first-child, :odd, ...).
    Put first among the bases (Textual's CSS follows the first DOMNode base)."""

    def _get_component_classes(self) -> frozenset[str]:
        # Stylesheet.apply calls this on the node, then styles the classes returned (none: keep ours)
        classes = super()._get_component_classes()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing is shared
            return classes
        if _emptied_by[0] is not loop:  # (what a loop that ended before its next turn left goes too)
            _first_of_kind.clear()
            _emptied_by[0] = loop
            loop.call_soon(_empty_first_of_kind)
        key = self._kind()
        first = _first_of_kind.get(key)
        if first is None or first is self:
            _first_of_kind[key] = self
            return classes
        styles = first._component_styles
        if styles.keys() != classes or any(s.node._has_order_style or s.node._has_odd_or_even
                                           or s.node._has_focus_within for s in styles.values()):
            return classes
        changed = self._component_styles != styles
        self._component_styles.clear()
        self._component_styles.update(styles)
        if changed:  # as Stylesheet does: a block whose styles changed is drawn again
            self.refresh()
        return frozenset()

    def _kind(self) -> tuple:
        """What the styles of this block's inline parts depend on but the rules' positions: the Markdown
        widget it is in, and type, id, classes and state of the block and of each widget in between."""
        path = []
        node = self
        while node is not None and not isinstance(node, Markdown):
            path.append((type(node), node._id, node.classes, node._pseudo_classes_cache_key))
            node = node._parent
        return node, *path


class HangingIndent(Visual):
    """`marker` on the first line, `body` wrapped beside it (later lines indented under the body)."""

    def __init__(self, marker: Content, body: Content) -> None:
        self.marker = marker
        self.body = body

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        indent = self.marker.cell_length
        return indent + self.body.get_optimal_width(rules, container_width - indent)

    def get_minimal_width(self, rules: RulesMap) -> int:
        return self.marker.cell_length + self.body.get_minimal_width(rules)

    def get_height(self, rules: RulesMap, width: int) -> int:
        return max(1, self.body.get_height(rules, width - self.marker.cell_length))

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        indent = self.marker.cell_length
        if width <= indent:
            return []
        body = self.body.render_strips(width - indent, height, style, options) or [Strip.blank(0)]
        plain = RenderOptions(options.get_style, options.rules)  # a selection indexes the body's text only
        marker = self.marker.render_strips(indent, 1, style, plain)[0]
        # the lines under the marker: spaces in the marker's style, as under Textual's bullet widget
        under = sum((options.get_style(span.style) for span in self.marker.spans), style)
        blank = Strip.blank(indent, under.rich_style)
        return [Strip.join([marker if y == 0 else blank, line]) for y, line in enumerate(body)]


class MarkdownSimpleListItem(SharedInlineStyles, MarkdownBlock):
    """A list item holding one paragraph, drawn as one widget: its bullet, then the text, hanging."""

    COMPONENT_CLASSES = {"list-bullet"}
    DEFAULT_CSS = """
    MarkdownSimpleListItem > .list-bullet { color: $text-primary; }
    MarkdownSimpleListItem:light > .list-bullet { color: $text-secondary; }
    """

    def __init__(self, item: MarkdownListItem, symbol: str, paragraph: MarkdownParagraph) -> None:
        super().__init__(item._markdown, item._token)
        self.symbol = symbol
        self._inline_token = paragraph._inline_token
        self.set_content(paragraph._content)

    def set_content(self, content: Content) -> None:
        self._content = content
        marker = Content(self.symbol, spans=[Span(0, len(self.symbol), ".list-bullet")])
        self.update(HangingIndent(marker, content))

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract(self._content.plain), "\n"


def _list_item(block: MarkdownListItem, symbol: str) -> MarkdownBlock | Horizontal:
    """One widget for an item that is a single paragraph; otherwise Textual's bullet/column layout."""
    if len(block._blocks) == 1 and type(block._blocks[0]) in (MarkdownParagraph, FastParagraph):
        return MarkdownSimpleListItem(block, symbol, block._blocks[0])
    bullet = MarkdownBullet()
    bullet.symbol = symbol
    return _ItemRow(bullet, _ItemColumn(*block._blocks))


class _ItemRow(HeightFromWidth, Horizontal):
    pass


class _ItemColumn(HeightFromWidth, Vertical):
    pass


class FastBulletList(HeightFromWidth, MarkdownBulletList):
    def compose(self) -> ComposeResult:
        for block in self._blocks:
            if isinstance(block, MarkdownListItem):
                yield _list_item(block, block.bullet)
        self._blocks.clear()


class FastOrderedList(HeightFromWidth, MarkdownOrderedList):
    def compose(self) -> ComposeResult:
        # numbering as MarkdownOrderedList.compose: from the first item's number, right-aligned
        start = 1
        if self._blocks and isinstance(self._blocks[0], MarkdownOrderedListItem):
            try:
                start = int(self._blocks[0].bullet)
            except ValueError:
                pass
        items = [block for block in self._blocks if isinstance(block, MarkdownListItem)]
        size = max((len(f"{number}. ") for number, _ in enumerate(items, start)), default=0)
        for number, block in enumerate(items, start):
            yield _list_item(block, f"{number}. ".rjust(size + 1))
        self._blocks.clear()


# A list draws no text itself (its items do): no inline styles (em, strong, ...) to work out for it, each of
# which costs a stylesheet pass when the list mounts. (Set here: Widget drops the class keyword for it.)
for _list in (FastBulletList, FastOrderedList):
    _list._inherit_component_classes = False

class HighlightOnceFence(MarkdownFence):
    """A code block highlighted when built and again only if the colours it was highlighted for change."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._highlighted_for = self._colour_key()

    def _colour_key(self) -> tuple[bool, bool]:
        return self.app.native_ansi_color, self.app.current_theme.dark

    def notify_style_update(self) -> None:
        if self._colour_key() != self._highlighted_for:
            self._highlighted_for = self._colour_key()
            super().notify_style_update()  # highlights again
        else:
            MarkdownBlock.notify_style_update(self)


class FastParagraph(SharedInlineStyles, MarkdownParagraph):
    pass


FAST_HEADERS = {f"h{header.LEVEL}": type(f"Fast{header.__name__[len('Markdown'):]}", (SharedInlineStyles, header), {})
                for header in (MarkdownH1, MarkdownH2, MarkdownH3, MarkdownH4, MarkdownH5, MarkdownH6)}


class FastMarkdown(HeightFromWidth, Markdown):
    """Markdown with single-widget list items and code highlighted once; looks the same as Markdown."""

    BLOCKS = {**Markdown.BLOCKS, **FAST_HEADERS, "paragraph_open": FastParagraph, "bullet_list_open": FastBulletList,
              "ordered_list_open": FastOrderedList, "fence": HighlightOnceFence, "code_block": HighlightOnceFence}
