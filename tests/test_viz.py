"""course.viz: widget figures stay out of pyplot's queue, so only the widget's update draws them."""

from unittest import mock

import ipywidgets as W
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course import viz  # noqa: E402


def test_live_output_runs_updates_non_interactive_and_restores_the_mode():
    seen = []

    def update(n):
        seen.append((n, matplotlib.is_interactive()))

    slider = W.IntSlider(value=1)
    was = matplotlib.is_interactive()
    matplotlib.interactive(True)
    try:
        viz.live_output(update, {"n": slider})
        slider.value = 2
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(was)
    assert seen == [(1, False), (2, False)]


def test_show_figure_takes_the_figure_out_of_pyplot_before_drawing_it():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    registered = []
    with mock.patch("IPython.display.display", lambda f: registered.append(plt.fignum_exists(f.number))):
        viz.show_figure(fig)
    assert registered == [False]
