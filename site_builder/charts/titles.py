"""Build warnings for charts without axis titles.

A chart's axes otherwise show raw metric keys (`probe/test_acc`, `_step`), which say nothing to a
reader. The check reads each chapter's source, so it also runs for pages taken from the render cache.
"""

from __future__ import annotations

import re

import yaml

CHART_FENCE = re.compile(r"^(```+|~~~+)\s*chart\s*$")


def missing_axis_titles(chapters: list[tuple[str, str]]) -> list[str]:
    """One warning per line/bar/scatter chart of (path, markdown) that lacks x_title or y_title."""
    warnings = []
    for path, text in chapters:
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            opening = CHART_FENCE.match(lines[i].strip())
            if not opening:
                i += 1
                continue
            start, fence = i + 1, opening.group(1)
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            try:
                spec = yaml.safe_load("\n".join(lines[start:i]))
            except yaml.YAMLError:
                spec = None  # the build itself reports a broken block
            i += 1
            if not isinstance(spec, dict) or spec.get("type", "line") == "panels":
                continue
            missing = [key for key in ("x_title", "y_title") if not spec.get(key)]
            if missing:
                warnings.append(
                    f"{path}:{start}: chart has no {' or '.join(missing)}: name each axis in words with its unit "
                    "(e.g. x_title: 'training step', y_title: 'test accuracy (%)'), not by its metric key"
                )
    return warnings
