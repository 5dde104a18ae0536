"""Shared pieces of the chapters' widgets and plots.

Each chapter's widget logic lives in ``course/widgets/chNN_*.py``; what they all need is here:
a handle that tests can drive without a browser, an Output that re-runs on every change, and a
way to draw a figure into it.

Why ``live_output`` and ``show_figure`` keep figures away from pyplot's queue: after *every*
comm message ipywidgets' kernel side fires IPython's ``post_execute`` event, and the inline
backend answers it by drawing and closing every queued pyplot figure. JupyterLab 4 sends widget
messages on a kernel subshell (ipykernel 7), so the Output's echo of the printed text is handled
on another thread while the update is still drawing its figure: two threads rendering one figure
give a blank or half-drawn image. Figures made inside ``live_output`` are not queued, and
``show_figure`` takes the figure out of pyplot before drawing it, so only the update draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib
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


def live_output(update: Callable[..., None], controls: dict):
    """``ipywidgets.interactive_output(update, controls)`` whose figures only ``show_figure`` draws.

    While ``update`` runs, matplotlib is not interactive, so the inline backend queues none of
    the figures it makes (see the module docstring for the race this avoids).
    """
    import ipywidgets as W

    def run(**values):
        was = matplotlib.is_interactive()
        matplotlib.interactive(False)
        try:
            update(**values)
        finally:
            matplotlib.interactive(was)

    return W.interactive_output(run, controls)


def show_figure(fig) -> None:
    """Display a figure inside the current Output and free it (works headless and live).

    The figure leaves pyplot first, so no other thread's ``post_execute`` can draw it meanwhile.
    """
    from IPython.display import display

    plt.close(fig)
    display(fig)
