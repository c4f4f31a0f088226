"""Compare scripts/bench runs page by page: each page's requests/s over govern's floor measured in the same run.

    .venv/bin/python scripts/bench_compare.py [--over=floor|reference] BASE1/results.json BASE2/results.json [OTHER/results.json ...]

The first two runs are the same code measured back to back: the spread of a page's ratio between them
is the noise (the difference over their mean). Every further run is shown as its ratio and its change
from the mean of the first two, marked when the change is larger than the noise. Ratios to a floor served by the same gunicorn in the
same run travel better than requests/s on a machine whose speed varies (see docs/performance.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def ratios(results: dict[str, Any], over: str = "floor") -> dict[str, float]:
    """Each page's requests/s over the signed-in floor with the layout (scripts/bench_floor.py), or over
    the reference's bare 50-row page (``over="reference"``)."""
    base = results["floor"]["signed_in_layout"]["rps"] if over == "floor" else results["reference"]["bare_50_rows"]["rps"]
    return {name: row["rps"] / base for name, row in results["pages"].items()} if base else {}


def compare(runs: list[tuple[str, dict[str, Any]]], over: str = "floor") -> str:
    """A Markdown table: ratio per run, the noise of the first two, and each further run's change."""
    (name1, first), (name2, second), *others = [(name, ratios(results, over)) for name, results in runs]
    head = ["page", name1, name2, "noise"] + [f"{name} (change)" for name, _ in others]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for page in first:
        a, b = first[page], second.get(page, 0.0)
        base = (a + b) / 2
        noise = abs(a - b) / base if base else 0.0
        cells = [page, f"{a:.3f}", f"{b:.3f}", f"{noise:.1%}"]
        for _name, other in others:
            value = other.get(page, 0.0)
            change = value / base - 1 if base else 0.0
            mark = " **beyond**" if abs(change) > noise else ""
            cells.append(f"{value:.3f} ({change:+.1%}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the comparison of the runs named on the command line."""
    over = "floor"
    if argv and argv[0].startswith("--over="):
        over, argv = argv[0].split("=", 1)[1], argv[1:]
    if len(argv) < 2 or over not in ("floor", "reference"):
        print(__doc__, file=sys.stderr)
        return 2
    runs = [(Path(arg).parent.name or arg, json.loads(Path(arg).read_text())) for arg in argv]
    print(compare(runs, over), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
