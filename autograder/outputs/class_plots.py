"""The class report's figures, drawn with matplotlib into ``data:`` URIs.

The page loads nothing (its Content-Security-Policy allows images from
``data:`` URIs only), so each figure is a PNG embedded in the page. The
figures are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas,
not through ``pyplot``: no global state, no GUI backend, whatever backend the
process has chosen. They are sized for the page's column (``WIDTH_PX`` CSS
pixels, a laptop's 1280 px screen with margins) and drawn at twice that
resolution, so they stay sharp on high-density screens.
"""

from __future__ import annotations

import base64
import io

#: the width of the page's column, in CSS pixels
WIDTH_PX = 800
#: pixels per inch of the figures (twice the CSS 96 for sharp text)
DPI = 192
_INCH = WIDTH_PX / 96


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def score_histogram(hist: dict, stats: dict, max_score: float) -> str:
    """The score distribution, with the mean and the median marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_INCH, 2.8), layout="constrained")
    ax = fig.add_subplot()
    edges, counts = hist["edges"], hist["counts"]
    widths = [b - a for a, b in zip(edges, edges[1:], strict=False)]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4c72b0")
    ax.bar(edges[:-1], counts, width=widths, align="edge", fill=False, lw=0.6)
    if stats.get("n"):
        ax.axvline(stats["mean"], color="#c44e52", lw=1.5, label="mean")
        ax.axvline(stats["median"], color="#222", ls="--", lw=1.5, label="median")
        ax.legend(loc="upper left", frameon=False)
    ax.set_xlim(0, max(edges[-1], max_score))
    ax.set_xlabel(f"score (of {max_score:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def cell_bars(cells: list[dict]) -> str:
    """Per graded cell, the share of the class that lost points on it."""
    from matplotlib.figure import Figure

    names = [str(c["cell"])[:40] for c in cells]
    shares = [100 * c["fraction"] for c in cells]
    fig = Figure(figsize=(_INCH, 0.8 + 0.32 * len(cells)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(range(len(cells)), shares, color="#dd8452")
    ax.set_yticks(range(len(cells)), names)
    ax.invert_yaxis()  # the notebook's order, top down
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of submissions that lost points")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
