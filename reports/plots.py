"""Small SVG plots for the report: the budget fraction of each check against the step.

A case's ``series`` (docs/results-schema.md) holds, per step, observed error /
allowed error for each check; the plot draws them on a log axis with the 100 %
line (a correct implementation stays under it) and the first failing step.
The SVG holds numbers and fixed labels only, never a string from a results
file, so it can be inlined in the page as it is.
"""

from __future__ import annotations

import io
import re
from typing import Mapping, Sequence

__all__ = ["budget_plot_svg", "format_budget"]

#: Values at or below this fraction (exact agreement gives 0) are drawn on the bottom edge.
FLOOR = 1e-4
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_ID = re.compile(r'\sid="([^"]+)"')


def format_budget(fraction: float | None) -> str:
    """A budget fraction as people read it: a percentage within the budget, a multiple beyond it.

    ``0.42 -> "42%"``, ``0.003 -> "0.3%"``, ``1.0 -> "100%"``, ``3.1 -> "3.10×"``,
    ``25000.0 -> "2.5e4×"``, ``None -> "–"`` (not measured).
    """
    if fraction is None:
        return "–"
    if fraction == 0:
        return "0%"
    if fraction < 1e-4:
        return "<0.01%"
    if fraction < 0.1:
        return f"{100 * fraction:.2g}%"
    if fraction <= 1:
        return f"{100 * fraction:.0f}%"
    if fraction < 10:
        return f"{fraction:.2f}×"  # "1.00×": just over the budget must not read as "1×"
    if fraction < 1000:
        return f"{fraction:.3g}×"
    return f"{fraction:.1e}×".replace("e+0", "e").replace("e+", "e")


def budget_plot_svg(series: Mapping[str, Sequence], first_failing_step: int | None = None,
                    *, width_in: float = 5.0, height_in: float = 2.1, deciding: Sequence[str] = (),
                    window: tuple[int, float] | None = None, salt: str = "adamconf") -> str:
    """An ``<svg>`` element (no XML prolog) plotting every non-step key of ``series`` against ``series["step"]``.

    y is the budget fraction on a log axis; values <= ``FLOOR`` (and ``None``,
    i.e. not measured or not finite) are clipped to the axis floor or left out.
    ``deciding``: the checks that decided a failure; they are drawn first, thick and
    in colour, the other series thin and grey ("within budget"), so that the plot
    shows the check the verdict names. ``window``: ``(from_step, value)`` of the
    mean-error check's window statistic, drawn as a segment from that step on.
    ``salt`` makes the SVG's internal ids (clip paths) unique in a page and the
    output deterministic (matplotlib salts them with a random UUID otherwise).
    """
    import matplotlib
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    matplotlib.use("Agg")  # no display; also keeps the pyplot-free Figure on a known backend
    from matplotlib.figure import Figure

    steps = [int(s) for s in series["step"]]
    curves = {name: values for name, values in series.items() if name != "step"}
    top = 1.0
    # Text stays text (not glyph paths) and names a short font list: a few kB per plot.
    rc = {"svg.fonttype": "none", "font.size": 7.5, "axes.linewidth": 0.6, "svg.hashsalt": salt,
          "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"]}
    deciding = [name for name in deciding if name in curves]
    order = deciding + [name for name in curves if name not in deciding]
    with matplotlib.rc_context(rc):
        figure = Figure(figsize=(width_in, height_in))
        axes = figure.add_axes((0.14, 0.2, 0.56, 0.74))
        colors = iter(_COLORS * 4)
        for name in order:
            values = curves[name]
            points = [(s, max(float(v), FLOOR)) for s, v in zip(steps, values) if v is not None]
            if not points:
                continue
            top = max(top, max(y for _, y in points))
            xs, ys = zip(*points)
            if deciding and name not in deciding:
                axes.plot(xs, ys, color="#aaaaaa", linewidth=0.7, label=f"{name} (within budget)")
                continue
            axes.plot(xs, ys, color=next(colors), linewidth=1.6 if deciding else 1.0,
                      marker="." if len(xs) < 40 else None, markersize=3,
                      label=f"{name} (failed)" if deciding else name, zorder=3)
        if window is not None and window[1] is not None and steps:
            start, value = int(window[0]), max(float(window[1]), FLOOR)
            top = max(top, value)
            axes.plot([start, steps[-1]], [value, value], color="#d62728", linewidth=2.2, alpha=0.55,
                      solid_capstyle="butt", label=f"mean error from\nstep {start}: {format_budget(window[1])}")
        axes.axhline(1.0, color="#444444", linewidth=0.8, linestyle="--", label="budget (100%)")
        if first_failing_step is not None:
            axes.axvline(first_failing_step, color="#d62728", linewidth=0.8, linestyle=":",
                         label=f"first failing step {int(first_failing_step)}")
        axes.set_yscale("log")
        axes.set_ylim(FLOOR * 0.8, top * 2.5)
        axes.yaxis.set_major_locator(LogLocator(base=10, numticks=8))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: format_budget(y)))
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.yaxis.set_minor_locator(NullLocator())  # hundreds of tick lines on a wide log range: most of the time
        axes.set_xlabel("step")
        axes.set_ylabel("budget used")
        axes.grid(True, which="major", axis="y", linewidth=0.3, color="#cccccc")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=6.5)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buffer.getvalue())


def _inline(svg: str) -> str:
    """The ``<svg>`` element alone, without its RDF metadata and the ids nothing refers to.

    matplotlib names every group (``figure_1``, ``axes_1``, ...), which would
    repeat across plots in one page; the ids it does refer to (clip paths,
    markers) carry a random hash, so they stay unique. Pages inlining it style
    ``svg * {stroke-linejoin: round; stroke-linecap: butt}``.
    """
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    # Its one style rule ("*{stroke-linejoin: round; ...}") would apply to the whole
    # page once inlined; the report's stylesheet scopes it to svg instead.
    svg = re.sub(r"\s*<style[^>]*>.*?</style>", "", svg, flags=re.S)
    referenced = set(re.findall(r"#([A-Za-z_][\w.-]*)", svg))
    return _ID.sub(lambda m: m.group(0) if m.group(1) in referenced else "", svg)
