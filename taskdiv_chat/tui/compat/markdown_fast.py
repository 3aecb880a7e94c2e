"""A Markdown widget that builds fewer widgets for the same look.

Textual's Markdown mounts four widgets per list item (a row, the bullet, a column,
the paragraph): in a long answer, lists are most of the widgets, and mounting and
laying them out is most of the render time. Here a list whose items are each one
paragraph, maybe followed by such a list (the usual case), is one widget that
draws every bullet and hangs the wrapped lines under their text; in other lists
(an item with two paragraphs, code, a quote) an item that is one paragraph is one
widget and the others keep Textual's layout. Code blocks are highlighted once, not
again on mount. Paragraphs, headers and lists of one kind side by side work out
their inline styles (em, strong, ...) once.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from rich.segment import Segment
from rich.style import Style as RichStyle
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content, Span
from textual.css.styles import RulesMap
from textual.geometry import Offset
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


class ListLines(Visual):
    """A list (or one item of it) as one visual, placed as Textual's bullet and column widgets place it:
    each item's marker on its first line, its paragraph wrapped beside the marker (later lines hang under
    the paragraph, not the marker), and under the paragraph the item's own list, if any (a ListLines too).

    A selection indexes `text`, the lines the list copies: each item's paragraph, then its own list's."""

    def __init__(self, items: list[tuple[Content, Content, ListLines | None]]) -> None:
        self.items = items  # (marker, paragraph, own list)
        self.text = "\n".join(_selectable(body.plain) + ("\n" + nested.text if nested else "")
                              for _, body, nested in items)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return max((marker.cell_length + max(body.get_optimal_width(rules, container_width - marker.cell_length),
                                             nested.get_optimal_width(rules, container_width - marker.cell_length)
                                             if nested else 0)
                    for marker, body, nested in self.items), default=0)

    def get_minimal_width(self, rules: RulesMap) -> int:
        return max((marker.cell_length + max(body.get_minimal_width(rules),
                                             nested.get_minimal_width(rules) if nested else 0)
                    for marker, body, nested in self.items), default=0)

    def get_height(self, rules: RulesMap, width: int) -> int:
        height = 0
        for marker, body, nested in self.items:
            inner = width - marker.cell_length
            if inner < 1:  # no room beside the marker (a deep list in a narrow column): the marker alone
                height += 1
            else:
                height += max(1, body.get_height(rules, inner) + (nested.get_height(rules, inner) if nested else 0))
        return height

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        lines: list[Strip] = []
        plain = RenderOptions(options.get_style, options.rules)  # the markers are never selected
        y = 0  # the line of `text` the item starts at
        for marker, body, nested in self.items:
            indent = marker.cell_length
            body_lines = body.plain.count("\n") + 1
            # a press on the marker starts a selection at the start of the item's text
            first = _pressed_at(marker.render_strips(indent, 1, style, plain)[0], (0, y))
            if width - indent < 1:
                lines.append(first.crop(0, width))
            else:
                item = _moved(body.render_strips(width - indent, None, style, _shifted(options, y)), y)
                if nested is not None:
                    below = y + body_lines
                    item += _moved(nested.render_strips(width - indent, None, style, _shifted(options, below)), below)
                # the lines under the marker: spaces in the marker's style, as under Textual's bullet widget;
                # a press there starts a selection at the start of the text beside it
                under = Strip.blank(indent, sum((options.get_style(span.style) for span in marker.spans),
                                                style).rich_style)
                lines += [Strip.join([first if n == 0 else _pressed_at(under, _first_offset(line)), line])
                          for n, line in enumerate(item or [Strip.blank(0)])]
            y += body_lines + (nested.text.count("\n") + 1 if nested else 0)
        return lines if height is None else lines[:height]


def _shifted(options: RenderOptions, lines: int) -> RenderOptions:
    """The options for a part of a ListLines that starts `lines` lines into its text: its selection
    counted from that line."""
    selection = options.selection
    if selection is None or not lines:
        return options
    start, end = (None if offset is None else Offset(offset.x, offset.y - lines) for offset in selection)
    return replace(options, selection=Selection(start, end))


def _moved(strips: list[Strip], lines: int) -> list[Strip]:
    """Strips of a part of a ListLines that starts `lines` lines into its text, their selection offsets
    (where a mouse press starts or ends a selection) counted from the start of the whole text."""
    if not lines:
        return strips
    moved = []
    for strip in strips:
        segments = []
        for text, style, control in strip:
            if (offset := _offset(style)) is not None:
                style += RichStyle.from_meta({"offset": (offset[0], offset[1] + lines)})
            segments.append(Segment(text, style, control))
        moved.append(Strip(segments, strip.cell_length))
    return moved


# What str.splitlines (and so Selection.extract) ends a line at, besides the "\n" a drawn line ends at
# (inline code keeps them): a space each in the text a selection indexes, so that its lines are those drawn
_OTHER_LINE_ENDS = str.maketrans({character: " " for character in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def _selectable(text: str) -> str:
    return text.translate(_OTHER_LINE_ENDS)


def _offset(style: RichStyle | None) -> tuple[int, int] | None:
    """The selection offset a cell of this style is at, if any."""
    offset = style.meta.get("offset") if style is not None else None
    return offset if offset is not None and offset[1] is not None else None


def _first_offset(strip: Strip) -> tuple[int, int] | None:
    """The selection offset of the first character of a line that has one."""
    return next((offset for segment in strip if (offset := _offset(segment.style)) is not None), None)


def _pressed_at(strip: Strip, offset: tuple[int, int] | None) -> Strip:
    """`strip` with every cell at the selection offset `offset` (Textual adds how far into a segment the
    press is: hence a segment per character)."""
    if offset is None:
        return strip
    meta = RichStyle.from_meta({"offset": offset})
    return Strip([Segment(character, segment.style + meta if segment.style else meta)
                  for segment in strip for character in segment.text], strip.cell_length)


def _marker(symbol: str) -> Content:
    return Content(symbol, spans=[Span(0, len(symbol), ".list-bullet")])


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
        self.update(ListLines([(_marker(self.symbol), content, None)]))

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract(_selectable(self._content.plain)), "\n"


def _item_symbols(block: MarkdownBulletList | MarkdownOrderedList) -> list[tuple[MarkdownListItem, str]]:
    """A list's items, each with its marker, bulleted and numbered as Textual's lists do."""
    items = [item for item in block._blocks if isinstance(item, MarkdownListItem)]
    if not isinstance(block, MarkdownOrderedList):
        return [(item, item.bullet) for item in items]
    # numbering as MarkdownOrderedList.compose: from the first item's number, right-aligned
    start = 1
    if items and isinstance(items[0], MarkdownOrderedListItem):
        try:
            start = int(items[0].bullet)
        except ValueError:
            pass
    size = max((len(f"{number}. ") for number, _ in enumerate(items, start)), default=0)
    return [(item, f"{number}. ".rjust(size + 1)) for number, item in enumerate(items, start)]


def _is_paragraph(block) -> bool:
    return type(block) in (MarkdownParagraph, FastParagraph)


def _list_lines(block: MarkdownBulletList | MarkdownOrderedList) -> ListLines | None:
    """The whole list as one visual, if each item is one paragraph, maybe followed by a list drawn so too."""
    items = []
    for item, symbol in _item_symbols(block):
        parts = item._blocks
        if not 1 <= len(parts) <= 2 or not _is_paragraph(parts[0]):
            return None
        nested = None
        if len(parts) == 2 and (not isinstance(parts[1], FastList) or (nested := _list_lines(parts[1])) is None):
            return None
        items.append((_marker(symbol), parts[0]._content, nested))
    return ListLines(items)


def _list_item(block: MarkdownListItem, symbol: str) -> MarkdownBlock | Horizontal:
    """One widget for an item that is a single paragraph; otherwise Textual's bullet/column layout."""
    if len(block._blocks) == 1 and _is_paragraph(block._blocks[0]):
        return MarkdownSimpleListItem(block, symbol, block._blocks[0])
    bullet = MarkdownBullet()
    bullet.symbol = symbol
    return _ItemRow(bullet, _ItemColumn(*block._blocks))


class _ItemRow(HeightFromWidth, Horizontal):
    pass


class _ItemColumn(HeightFromWidth, Vertical):
    pass


class FastList(SharedInlineStyles, HeightFromWidth):
    """A list drawn whole as one widget (ListLines) when its items allow, which is most lists; else one
    widget per single-paragraph item and Textual's bullet/column layout for the others."""

    lines: ListLines | None = None  # what it draws, when it is drawn whole

    def compose(self) -> ComposeResult:
        self.lines = _list_lines(self)
        if self.lines is not None:
            self.update(self.lines)
        else:
            for item, symbol in _item_symbols(self):
                yield _list_item(item, symbol)
        self._blocks.clear()

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        if self.lines is None:
            return super().get_selection(selection)
        return selection.extract(self.lines.text), "\n"


class FastBulletList(FastList, MarkdownBulletList):
    COMPONENT_CLASSES = {"list-bullet"}  # (on each widget class: Textual takes them from widget classes only)
    DEFAULT_CSS = """
    FastBulletList > .list-bullet { color: $text-primary; }
    FastBulletList:light > .list-bullet { color: $text-secondary; }
    """


class FastOrderedList(FastList, MarkdownOrderedList):
    COMPONENT_CLASSES = {"list-bullet"}
    DEFAULT_CSS = """
    FastOrderedList > .list-bullet { color: $text-primary; }
    FastOrderedList:light > .list-bullet { color: $text-secondary; }
    """


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
