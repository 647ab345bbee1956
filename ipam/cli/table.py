"""Readable tables (or JSON with ``-f json``) for the admin CLI."""

from __future__ import annotations

import json
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}='{v}'" for k, v in value.items())
    return "" if value is None else str(value)


def render(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_cell(v).split("\n") for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [
        sep,
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        sep,
    ]
    for row in cells:
        for n in range(max(len(lines) for lines in row) if row else 0):
            parts = [
                (lines[n] if n < len(lines) else "").ljust(w)
                for lines, w in zip(row, widths, strict=True)
            ]
            out.append("| " + " | ".join(parts) + " |")
    out.append(sep)
    return "\n".join(out)


def show_item(item: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(item, indent=2, sort_keys=True)
    return render(["Field", "Value"], [[k, item[k]] for k in sorted(item)])


def show_list(items: list[dict[str, Any]], columns: list[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(items, indent=2)
    return render(columns, [[i.get(c) for c in columns] for i in items])
