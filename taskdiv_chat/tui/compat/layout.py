"""Auto-height containers measured at their width alone, so that a growing answer is laid out once.

Textual measures a container of height auto whose children are all of dynamic height (auto, fr, %)
by arranging them at (width, the height of the container it is in), and caches that arrangement under
that size. While an answer streams, the chat grows with every write: the size each block container
of the answer was measured at changed, every cache missed, and every write laid the whole answer out
again (at the end of a 5,000-token answer, 127 arrangements missed their cache in the last layout).

When no child's height can depend on the container's (each one auto or a number of cells, and so
are its min and max), the arrangement at (width, 0) is the same one, and it stays cached until the
container's children or their sizes change (Textual clears it then): 25 misses in that layout.
It overrides only public methods (get_content_height is meant to be), so it applies on any Textual.
"""

from __future__ import annotations

from textual.css.scalar import Unit
from textual.geometry import Size

_NOT_RELATIVE = (Unit.AUTO, Unit.CELLS)


def _own_height(styles) -> bool:
    """Whether a widget's height rules say nothing relative to its container."""
    return all(scalar is None or scalar.unit in _NOT_RELATIVE
               for scalar in (styles.height, styles.min_height, styles.max_height))


class HeightFromWidth:
    """For a container: its content height measured at its width alone when its children allow it.
    Put first among the bases."""

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width and self.children and all(_own_height(child.styles) for child in self.displayed_children):
            return self.arrange(Size(width, 0)).total_region.height
        return super().get_content_height(container, viewport, width)
