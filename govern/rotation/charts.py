"""Server-side SVG chart geometry (no JavaScript, no inline styles: classes only, for the CSP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from govern.rotation.dashboard import Bucket, MonthCompliance

WIDTH = 640
HEIGHT = 240
LEFT = 44
BOTTOM = 40
TOP = 16


@dataclass(frozen=True)
class Bar:
    """One bar: its box, its label under it, its value above it, and a CSS class."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    css: str


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw a bar chart."""

    title: str
    width: int
    height: int
    bars: list[Bar]
    gridlines: list[tuple[float, str]]
    baseline: float
    marker_x: float | None = None
    marker_label: str = ""


def _scale(top_value: float) -> float:
    return (HEIGHT - BOTTOM - TOP) / top_value if top_value else 0.0


def age_chart(buckets: Sequence[Bucket]) -> Chart:
    """Bars of credential age as a share of the interval; a line marks 100% (the interval's end)."""
    peak = max([b.count for b in buckets] + [1])
    scale = _scale(peak)
    slot = (WIDTH - LEFT - 8) / max(1, len(buckets))
    bars = []
    for i, bucket in enumerate(buckets):
        h = bucket.count * scale
        bars.append(Bar(LEFT + i * slot + 6, HEIGHT - BOTTOM - h, slot - 12, h, bucket.label, str(bucket.count),
                        f"bar bar-{bucket.state}"))
    steps = sorted({0, peak // 2, peak})
    grid = [(HEIGHT - BOTTOM - v * scale, str(v)) for v in steps]
    marker = LEFT + 4 * slot  # between 75-100% and 100-150%
    return Chart("Credential age against interval", WIDTH, HEIGHT, bars, grid, HEIGHT - BOTTOM, marker, "interval ends")


def compliance_chart(months: Sequence[MonthCompliance]) -> Chart:
    """Bars of the share of credentials within their interval at each month's end."""
    scale = _scale(100)
    slot = (WIDTH - LEFT - 8) / max(1, len(months))
    bars = []
    for i, month in enumerate(months):
        pct = month.percent
        h = (pct or 0) * scale
        css = "bar bar-none" if pct is None else "bar bar-fine" if pct >= 90 else "bar bar-due" if pct >= 70 else "bar bar-overdue"
        bars.append(Bar(LEFT + i * slot + 4, HEIGHT - BOTTOM - h, slot - 8, h, month.label.split(" ")[0],
                        "–" if pct is None else f"{pct:.0f}%", css))
    grid = [(HEIGHT - BOTTOM - v * scale, f"{v}%") for v in (0, 50, 100)]
    return Chart("Rotation compliance, last 12 months", WIDTH, HEIGHT, bars, grid, HEIGHT - BOTTOM)


def count_chart(title: str, points: Sequence[tuple[str, int, str]]) -> Chart:
    """Bars of a count per point (label, value, CSS class), e.g. the drift at each day's last sync."""
    peak = max([value for _, value, _ in points] + [1])
    scale = _scale(peak)
    slot = (WIDTH - LEFT - 8) / max(1, len(points))
    bars = [Bar(LEFT + i * slot + 4, HEIGHT - BOTTOM - value * scale, slot - 8, value * scale, label, str(value), css)
            for i, (label, value, css) in enumerate(points)]
    grid = [(HEIGHT - BOTTOM - v * scale, str(v)) for v in sorted({0, peak // 2, peak})]
    return Chart(title, WIDTH, HEIGHT, bars, grid, HEIGHT - BOTTOM)
