"""Small SVG plots for the report: the budget fraction of each check against the step.

A case's ``series`` (docs/results-schema.md) holds, per step, observed error /
allowed error for each check; the plot draws them on a log axis with the 100 %
line (a correct implementation stays under it) and the first failing step.
The SVG is written directly, without matplotlib (a millisecond a plot, where
matplotlib took 140 ms: at 43 plots, three quarters of a 10,000-case report's
render time). It holds numbers, fixed labels and the series' names (lowercase
identifiers by the schema, escaped anyway), so it can be inlined as it is.
"""

from __future__ import annotations

import html
import math
from typing import Mapping, Sequence

__all__ = ["budget_plot_svg", "format_budget"]

#: Values at or below this fraction (exact agreement gives 0) are drawn on the bottom edge.
FLOOR = 1e-4
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


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

    y is the budget fraction on a log axis; values <= ``FLOOR`` are drawn on the
    axis floor, ``None`` (not measured or not finite) leaves a gap.
    ``deciding``: the checks that decided a failure; they are drawn last, thick and
    in colour, the other series thin and grey ("within budget"), so that the plot
    shows the check the verdict names. ``window``: ``(from_step, value)`` of the
    mean-error check's window statistic, drawn as a segment from that step on.
    ``salt`` is kept for callers of the matplotlib version; the SVG has no ids.

    The SVG is written directly (polylines, ticks and labels; about 1 ms a plot,
    against 140 ms through matplotlib): a function of its arguments only, with
    no id, style or script, and text that is numbers, fixed labels and the
    series' names (lowercase identifiers by the results schema), escaped anyway.
    """
    del salt  # no ids to make unique
    width, height = round(width_in * 120), round(height_in * 120)
    left, right, top_px, bottom = 62.0, width - 190.0, 8.0, height - 34.0
    steps = [int(s) for s in series["step"]]
    curves = {name: values for name, values in series.items() if name != "step"}
    deciding = [name for name in deciding if name in curves]
    order = [name for name in curves if name not in deciding] + deciding  # the deciding ones on top
    top = 1.0
    for values in curves.values():
        for v in values:
            if v is not None and v > top:
                top = float(v)
    if window is not None and window[1] is not None:
        top = max(top, float(window[1]))
    if first_failing_step is not None:
        top = max(top, 1.0)
    lo, hi = math.log10(FLOOR * 0.8), math.log10(top * 2.5)
    x0 = min(steps) if steps else 0
    x1 = max(steps) if steps else 1
    if first_failing_step is not None:
        x0, x1 = min(x0, int(first_failing_step)), max(x1, int(first_failing_step))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (x1 - x0) * 0.03
    x0, x1 = x0 - pad, x1 + pad

    def px(step: float) -> float:
        return left + (step - x0) / (x1 - x0) * (right - left)

    def py(value: float) -> float:
        return bottom - (math.log10(max(value, FLOOR)) - lo) / (hi - lo) * (bottom - top_px)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" '
           f'font-size="10" class="budget-plot">']
    # axes, grid and ticks
    for k in range(math.ceil(lo), math.floor(hi) + 1):
        y = py(10.0 ** k)
        out.append(f'<path d="M{left:.1f} {y:.1f}H{right:.1f}" stroke="#dddddd" stroke-width="0.6"/>')
        out.append(f'<text x="{left - 4:.1f}" y="{y + 3.5:.1f}" text-anchor="end">{_esc(format_budget(10.0 ** k))}</text>')
    for step in _nice_ticks(x0, x1):
        x = px(step)
        out.append(f'<path d="M{x:.1f} {bottom:.1f}v4" stroke="#444444" stroke-width="0.8"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 15:.1f}" text-anchor="middle">{step:g}</text>')
    out.append(f'<path d="M{left:.1f} {top_px:.1f}V{bottom:.1f}H{right:.1f}" fill="none" stroke="#444444" '
               'stroke-width="0.8"/>')
    out.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 6:.1f}" text-anchor="middle">step</text>')
    out.append(f'<text transform="translate(13 {(top_px + bottom) / 2:.1f}) rotate(-90)" '
               'text-anchor="middle">budget used</text>')
    legend: list[tuple[str, str, float, str]] = []  # (colour, dash, width, label)
    colors = iter(_COLORS * 4)
    drawn: dict[str, tuple[str, float]] = {name: (next(colors), 1.8) for name in deciding}
    for name in curves:
        if name not in drawn:
            drawn[name] = ("#aaaaaa", 0.8) if deciding else (next(colors), 1.1)
    for name in order:
        color, stroke = drawn[name]
        d, pen, points = [], False, []
        for s, v in zip(steps, curves[name]):
            if v is None:
                pen = False
                continue
            x, y = px(s), py(float(v))
            d.append(f"{'L' if pen else 'M'}{x:.1f} {y:.1f}")
            points.append((x, y))
            pen = True
        if not d:
            continue
        out.append(f'<path d="{"".join(d)}" fill="none" stroke="{color}" stroke-width="{stroke}" '
                   'stroke-linejoin="round"/>')
        if len(points) < 40 and (name in deciding or not deciding):
            out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" fill="{color}"/>' for x, y in points)
        label = name if not deciding else (f"{name} (failed)" if name in deciding else f"{name} (within budget)")
        legend.append((color, "", stroke, label))
    if window is not None and window[1] is not None and steps:
        start, value = int(window[0]), float(window[1])
        y = py(value)
        out.append(f'<path d="M{px(start):.1f} {y:.1f}H{px(steps[-1]):.1f}" stroke="#d62728" stroke-width="3" '
                   'stroke-opacity="0.55"/>')
        legend.append(("#d62728", "", 3.0, f"mean error from step {start}: {format_budget(value)}"))
    y = py(1.0)
    out.append(f'<path d="M{left:.1f} {y:.1f}H{right:.1f}" stroke="#444444" stroke-width="0.9" '
               'stroke-dasharray="5 3"/>')
    legend.append(("#444444", "5 3", 0.9, "budget (100%)"))
    if first_failing_step is not None:
        x = px(int(first_failing_step))
        out.append(f'<path d="M{x:.1f} {top_px:.1f}V{bottom:.1f}" stroke="#d62728" stroke-width="0.9" '
                   'stroke-dasharray="1.5 2"/>')
        legend.append(("#d62728", "1.5 2", 0.9, f"first failing step {int(first_failing_step)}"))
    for i, (color, dash, stroke, label) in enumerate(legend):
        y = top_px + 8 + 14 * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<path d="M{right + 10:.1f} {y:.1f}h18" stroke="{color}" stroke-width="{stroke}"{dash_attr}/>')
        out.append(f'<text x="{right + 32:.1f}" y="{y + 3.5:.1f}" font-size="9">{_esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round steps (1, 2, 5 times a power of ten) between lo and hi, about ``count`` of them."""
    span = hi - lo
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * span:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
