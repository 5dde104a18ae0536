"""Plain-text tables: the one formatter behind every table of rows the course prints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["format_value", "text_table"]

MISSING = "—"


def format_value(value) -> str:
    """A cell: integers with thousands separators, floats to 4 significant digits (one decimal from 1000)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def text_table(rows: Sequence[Mapping], columns: Sequence[str] | Mapping[str, str] | None = None,
               formats: Mapping[str, str | Callable] | None = None, title: str = "",
               align: Mapping[str, str] | None = None) -> str:
    """Rows of dicts as an aligned text table: header, a rule, one line per row.

    ``columns`` lists the keys to show, or maps each key to its header; by default every key
    in order of first appearance. ``formats`` gives a key a format string (``"{:.2f}"``) or a
    function; other cells go through ``format_value``. A missing value prints as "—". The
    first column is left-aligned (names), the others right-aligned (numbers); ``align`` sets a
    key's own ("<" left, ">" right), e.g. for a column of sentences.
    """
    bad = {k: a for k, a in (align or {}).items() if a not in ("<", ">")}
    if bad:
        raise ValueError(f"align values must be '<' (left) or '>' (right), got {bad!r}")
    if not rows:
        return (title + "\n" if title else "") + "(no rows)"
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    headers = dict(columns) if isinstance(columns, Mapping) else {k: k for k in columns}
    formats = dict(formats or {})

    def cell(row, key):
        value, fmt = row.get(key), formats.get(key)
        if value is None or fmt is None:
            return format_value(value)
        return fmt(value) if callable(fmt) else fmt.format(value)

    body = [[cell(r, k) for k in headers] for r in rows]
    head = list(headers.values())
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    left = [(align or {}).get(k, "<" if i == 0 else ">") == "<" for i, k in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(cells, widths, left)).rstrip()

    lines = [title] if title else []
    lines += [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    return "\n".join(lines)
