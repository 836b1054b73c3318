"""Overprinted labels, measured: the window extents of every visible text of a matplotlib figure."""

from __future__ import annotations

from itertools import combinations

from matplotlib.figure import Figure
from matplotlib.text import Text


def visible_texts(fig: Figure) -> list[Text]:
    """Every drawn, non-empty text: titles, axis and tick labels, annotations, legend entries."""
    fig.canvas.draw()
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        out.append(t)
    return out


def overlapping_labels(fig: Figure, pad: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of texts whose bounding boxes (in pixels, shrunk by ``pad``) intersect."""
    texts = visible_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    hits = []
    for (ta, a), (tb, b) in combinations(boxes, 2):
        if (min(a.x1, b.x1) - max(a.x0, b.x0) > pad) and (min(a.y1, b.y1) - max(a.y0, b.y0) > pad):
            hits.append((ta, tb))
    return hits


def tick_texts(ax, axis: str = "x") -> list[str]:
    ax.figure.canvas.draw()
    a = ax.xaxis if axis == "x" else ax.yaxis
    return [t.get_text() for t in a.get_ticklabels() if t.get_visible() and t.get_text()]
