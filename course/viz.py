"""Shared pieces of the chapters' widgets and plots.

Each chapter's widget logic lives in ``course/widgets/chNN_*.py``; what they all need is here:
a handle that tests can drive without a browser, and a way to draw a figure into an Output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt


@dataclass
class WidgetHandle:
    """A built widget: ``widget`` to display, ``controls`` to drive, ``state()`` for what it shows now.

    As a cell's last expression it renders as the widget itself. Tests set
    ``controls[name].value`` and read ``state()``: no frontend needed.
    """

    widget: object
    controls: dict
    _state: dict = field(default_factory=dict, repr=False)

    def state(self) -> dict:
        return dict(self._state)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def show_figure(fig) -> None:
    """Display a figure inside the current Output and free it (works headless and live)."""
    from IPython.display import display

    display(fig)
    plt.close(fig)
