"""Argument checks shared by the whole package: bad input raises a ValueError that names the
argument, the value given and what is allowed, before any work is done."""

from __future__ import annotations

__all__ = ["check_int", "check_choice", "check_positive", "check_fraction"]


def check_int(name: str, value, low: int = 1, multiple: int = 1) -> None:
    """``value`` must be an ``int`` (not a bool) of at least ``low`` (and a multiple of ``multiple``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value % multiple:
        allowed = "a positive integer" if low == 1 else f"an integer >= {low}"
        if multiple > 1:
            allowed += f" and a multiple of {multiple}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_choice(name: str, value, allowed) -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def check_positive(name: str, value) -> None:
    """``value`` must be a real number (not a bool) above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_fraction(name: str, value) -> None:
    """``value`` must be a real number (not a bool) in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
