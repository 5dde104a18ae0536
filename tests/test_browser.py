"""Every chapter in a real JupyterLab + Chromium: runs clean, widgets render and respond.

One JupyterLab server (this environment, 127.0.0.1, random token, COURSE_QUICK=1) serves all
notebooks; Debian's /usr/bin/chromium is driven by the Python playwright package (no browser
download) and every request not aimed at 127.0.0.1/localhost is aborted. Screenshots go to
artifacts/screenshots/<notebook>.png.

Without /usr/bin/chromium the tests are skipped (install it with ``apt-get install chromium``),
unless COURSE_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import notebook as nbk  # noqa: E402
from browser.lab import start_lab, stop_lab  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(__file__).parent / "fixtures" / "demo_course.ipynb"
BROKEN = Path(__file__).parent / "fixtures" / "broken_widgets.ipynb"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
RUN_TIMEOUT_S = float(os.environ.get("COURSE_BROWSER_RUN_TIMEOUT", "300"))
INTERACTION_TIMEOUT_S = 60
_USES_WIDGETS = re.compile(r"ipywidgets|course\.widgets|\binteract(ive)?\(")


def _unavailable(reason: str):
    if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (COURSE_REQUIRE_BROWSER=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    if not Path(nbk.CHROMIUM).exists():
        _unavailable(f"{nbk.CHROMIUM} not found: install Debian's Chromium with "
                     "`sudo apt-get install chromium` to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: `pip install playwright` (no browser download needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=nbk.CHROMIUM, args=nbk.CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    server = start_lab(ROOT, tmp_path_factory.mktemp("jupyterlab"), env={"COURSE_QUICK": "1"})
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture
def page(chromium, lab):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.blocked = nbk.block_outside_requests(page)
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()


def _screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    first_widget = page.locator(f"{nbk.PANEL} .jp-Notebook .jp-OutputArea-output .jupyter-widgets")
    if first_widget.count():
        first_widget.first.scroll_into_view_if_needed()
    page.screenshot(path=str(target))
    return target


def _uses_widgets(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any(_USES_WIDGETS.search(c.source) for c in nb.cells if c.cell_type == "code")


NOTEBOOKS = [DEMO] + CHAPTERS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_widgets_respond(page, lab, path):
    nbk.open_notebook(page, lab.url(path.relative_to(ROOT).as_posix(), workspace=path.stem))
    try:
        nbk.restart_and_run_all(page)
        prompts = nbk.wait_until_idle(page, RUN_TIMEOUT_S)

        errors = nbk.error_outputs(page)
        assert not errors, "cells with errors:\n" + "\n".join(f"cell {e['cell']}: {e['text']}" for e in errors)
        not_run = [i for i, p in enumerate(prompts) if not re.search(r"\[\d+\]", p)]
        assert not not_run, f"code cells {not_run} did not run (prompts {prompts})"

        if not _uses_widgets(path):
            pytest.skip(f"{path.name} ran clean but shows no widget")
        fallbacks = nbk.widget_fallbacks(page)
        assert not fallbacks, f"widgets shown as text instead of rendering: {fallbacks}"
        counts = nbk.widget_counts(page)
        assert counts[".jupyter-widgets"] > 0, f"no widget rendered: {counts}"

        cells = nbk.widget_cells(page)
        interactions = [i for i in (nbk.interact(page, c, INTERACTION_TIMEOUT_S) for c in cells) if i]
        assert interactions, f"no slider, dropdown or toggle buttons to move in {len(cells)} widget cells"
        stuck = [f"{i.kind} in cell {i.cell}" for i in interactions if not i.changed]
        assert not stuck, f"output did not change after moving: {', '.join(stuck)}"
        undrawn = [f"{i.kind} in cell {i.cell}: {p}" for i in interactions for p in i.figure_problems]
        assert not undrawn, "widget figures not drawn:\n" + "\n".join(undrawn)
        assert not nbk.error_outputs(page), f"moving a widget raised: {nbk.error_outputs(page)}"
    finally:
        _screenshot(page, path.stem)


def test_detectors_flag_a_dead_slider_a_blank_redraw_and_an_error(page, lab):
    """The checks above can fail: a slider driving nothing, a figure that comes back blank after
    an update while its text changes, and a raising cell are reported."""
    nbk.open_notebook(page, lab.url(BROKEN.relative_to(ROOT).as_posix(), workspace=BROKEN.stem))
    nbk.restart_and_run_all(page)
    nbk.wait_until_idle(page, RUN_TIMEOUT_S)
    errors = nbk.error_outputs(page)
    assert [e["cell"] for e in errors] == [2] and "RuntimeError: deliberate failure" in errors[0]["text"]
    assert nbk.widget_fallbacks(page) == []
    dead, blanking = nbk.widget_cells(page)
    interaction = nbk.interact(page, dead, timeout_s=3)
    assert (interaction.kind, interaction.cell, interaction.changed) == ("slider", 1, False)
    interaction = nbk.interact(page, blanking, timeout_s=INTERACTION_TIMEOUT_S)
    assert (interaction.kind, interaction.cell, interaction.changed) == ("slider", 3, True)
    assert len(interaction.figures_before) == 1 and interaction.figures_before[0]["ink"] > nbk.MIN_INK
    assert [p.split(" (")[0] for p in interaction.figure_problems] == ["figure 0 is blank after the update"]
