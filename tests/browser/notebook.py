"""Drive one notebook in JupyterLab with Playwright: run it, inspect outputs, move widgets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# The notebook on screen (other tabs a workspace restores stay in the DOM, hidden).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# Text that means a widget did not render as a widget.
WIDGET_FALLBACKS = ("Loading widget...", "Error displaying widget", "Failed to display widget",
                    "IntSlider(value=", "FloatSlider(value=", "Dropdown(", "interactive(children=",
                    "VBox(children=", "HBox(children=", "Output()")
WIDGET_CLASSES = (".jupyter-widgets", ".widget-slider", ".widget-hslider", ".widget-dropdown",
                  ".widget-output", ".widget-image", ".widget-html", ".widget-button",
                  ".widget-toggle-buttons", ".widget-checkbox")


def block_outside_requests(page) -> list[str]:
    """Abort every request not aimed at the local server; returns the list of blocked URLs."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def open_notebook(page, url: str, timeout_ms: int = 90_000) -> None:
    """Open a notebook and wait until its kernel is started and idle (accepting a kernel picker)."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "Select Kernel" in dialog.first.inner_text():
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        status = page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator").first
        kernel = page.locator(f"{PANEL} .jp-KernelName, {PANEL} .jp-Toolbar-kernelName").first
        if (status.count() and status.get_attribute("data-status") == "idle"
                and kernel.count() and "No Kernel" not in kernel.inner_text()):
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"kernel of {url.split('?')[0]} not ready after {timeout_ms / 1000:.0f} s")


def _click_restart_and_run_all(page, timeout_ms: int) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click(timeout=timeout_ms)
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click(timeout=timeout_ms)
    page.locator(".jp-Dialog-button.jp-mod-accept").click(timeout=timeout_ms)


def restart_and_run_all(page, timeout_ms: int = 30_000, start_timeout_s: float = 60.0, tries: int = 3) -> None:
    """Kernel menu → "Restart Kernel and Run All Cells…" → confirm, until the new kernel has started.

    Now and then, right after a restart, JupyterLab 4 with ipykernel 7 leaves the kernel shown as
    "starting" for good (the server logs a broken channel message); a learner would press restart
    again, and so does this, up to ``tries`` times, saying so.
    """
    for attempt in range(1, tries + 1):
        _click_restart_and_run_all(page, timeout_ms)
        page.wait_for_timeout(1000)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if page.evaluate(_STATE_JS)["status"] not in ("starting", "restarting", None):
                return
            page.wait_for_timeout(250)
        print(f"kernel still starting {start_timeout_s:.0f} s after restart {attempt} of {tries}; restarting again")
    raise TimeoutError(f"kernel did not start after {tries} restarts of {start_timeout_s:.0f} s each")


_STATE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
      .map(p => p.innerText.trim());
  const indicator = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return {prompts, status: indicator ? indicator.getAttribute('data-status') : null};
}"""


def wait_until_idle(page, timeout_s: float, settle_s: float = 2.0) -> list[str]:
    """Wait until no cell is queued or running and the kernel is idle for ``settle_s``; returns prompts."""
    deadline = time.monotonic() + timeout_s
    idle_since = None
    started = False
    while time.monotonic() < deadline:
        state = page.evaluate(_STATE_JS)
        busy = any("*" in p for p in state["prompts"]) or state["status"] != "idle"
        started = started or busy or any(p.strip("[]: ") for p in state["prompts"])
        if busy or not started:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle_s:
            return state["prompts"]
        page.wait_for_timeout(250)
    raise TimeoutError(f"notebook still busy after {timeout_s:.0f} s: {page.evaluate(_STATE_JS)}")


_ERRORS_JS = """() => {
  const found = [];
  document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').forEach((cell, index) => {
    cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
      .forEach(out => {
        const text = out.innerText;
        if (/Traceback|\\b\\w*Error\\b|\\w+Exception\\b/.test(text)) found.push({cell: index, text: text.length > 900 ? text.slice(0, 200) + ' … ' + text.slice(-700) : text});
      });
  });
  return found;
}"""


def error_outputs(page) -> list[dict]:
    """Outputs rendered as errors (tracebacks, ``SomethingError``) with the index of their cell."""
    return page.evaluate(_ERRORS_JS)


def output_text(page) -> str:
    """Text of every cell's outputs (not the code, which may well mention ``IntSlider(``)."""
    return "\n".join(page.locator(f"{PANEL} .jp-Notebook .jp-OutputArea").all_inner_texts())


def widget_fallbacks(page) -> list[str]:
    """Fallback texts shown where a widget should be (no widget manager, missing model, ...)."""
    text = output_text(page)
    return [marker for marker in WIDGET_FALLBACKS if marker in text]


def widget_counts(page) -> dict[str, int]:
    return page.evaluate("""(classes) => Object.fromEntries(classes.map(
        c => [c, document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-OutputArea-output ' + c).length]))""",
                         list(WIDGET_CLASSES))


# A fingerprint of what widgets show, without the controls themselves (their readouts
# change when moved, which proves nothing about the output they drive).
_SIGNATURE_JS = """(cell) => {
  const copy = cell.querySelector('.jp-Cell-outputWrapper').cloneNode(true);
  copy.querySelectorAll('.widget-readout, .noUi-target, select, input, label, .widget-label')
      .forEach(e => e.remove());
  const images = [...copy.querySelectorAll('img')].map(i => i.getAttribute('src') || '');
  const canvases = [...cell.querySelectorAll('canvas')].map(c => { try { return c.toDataURL(); } catch (e) { return ''; } });
  return copy.innerText + '|' + images.join('|') + '|' + canvases.join('|');
}"""


# Every image in a cell's outputs, decoded: its size and its share of "ink" pixels (opaque and
# darker or more coloured than near-white). A blank or transparent image has none.
_FIGURES_JS = """async (cell) => {
  const found = [];
  for (const img of cell.querySelectorAll('.jp-OutputArea-output img')) {
    if (!img.complete || !img.naturalWidth) { try { await img.decode(); } catch (e) {} }
    const w = img.naturalWidth, h = img.naturalHeight;
    let ink = 0;
    if (w && h) {
      const canvas = document.createElement('canvas');
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, w, h).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 128 && Math.min(d[i], d[i + 1], d[i + 2]) < 200) n++;
      }
      ink = n / (w * h);
    }
    found.push({width: w, height: h, ink});
  }
  return found;
}"""

MIN_INK = 0.003  # a drawn figure: axes, ticks, labels and data cover well over 0.3 % of its pixels
MIN_INK_KEPT = 0.25  # after an update, at least this share of the ink the first drawing had
SIZE_TOLERANCE = 0.15  # tick labels may change the tight bounding box a little, not more


def figures(cell) -> list[dict]:
    """Size and ink share of every image in the cell's outputs."""
    return cell.evaluate(_FIGURES_JS)


def _wait_for_figures(cell, count: int, timeout_s: float) -> list[dict]:
    """Poll until the cell shows ``count`` decoded images and two looks agree (the redraw is over)."""
    deadline = time.monotonic() + timeout_s
    last = figures(cell)
    while time.monotonic() < deadline:
        cell.page.wait_for_timeout(300)
        now = figures(cell)
        if len(now) == count and all(f["width"] for f in now) and now == last:
            return now
        last = now
    return last


def figure_problems(before: list[dict], after: list[dict]) -> list[str]:
    """What is wrong with the figures a widget drew, first and after an update (empty: nothing)."""
    problems = [f"figure {k} is blank before moving ({f['width']}x{f['height']} px, {f['ink']:.2%} ink)"
                for k, f in enumerate(before) if f["ink"] < MIN_INK]
    if len(after) != len(before):
        return problems + [f"{len(before)} figures before moving, {len(after)} after"]
    for k, (b, a) in enumerate(zip(before, after)):
        if a["ink"] < max(MIN_INK, MIN_INK_KEPT * b["ink"]):
            problems.append(f"figure {k} is blank after the update ({a['ink']:.2%} ink, {b['ink']:.2%} before)")
        if not (abs(a["width"] - b["width"]) <= SIZE_TOLERANCE * b["width"]
                and abs(a["height"] - b["height"]) <= SIZE_TOLERANCE * b["height"]):
            problems.append(f"figure {k} changed size from {b['width']}x{b['height']} to {a['width']}x{a['height']} px")
    return problems


@dataclass
class Interaction:
    kind: str  # "slider", "dropdown" or "toggle buttons"
    cell: int
    changed: bool
    before: str = field(repr=False, default="")
    after: str = field(repr=False, default="")
    figures_before: list = field(repr=False, default_factory=list)
    figures_after: list = field(repr=False, default_factory=list)

    @property
    def figure_problems(self) -> list[str]:
        return figure_problems(self.figures_before, self.figures_after)


def _cell_index(page, cell) -> int:
    return cell.evaluate("(c) => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')].indexOf(c)")


def _wait_for_change(page, cell, before: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    after = before
    while time.monotonic() < deadline:
        page.wait_for_timeout(300)
        after = cell.evaluate(_SIGNATURE_JS)
        if after != before:
            page.wait_for_timeout(500)  # let a multi-part redraw finish before the screenshot
            return cell.evaluate(_SIGNATURE_JS)
    return after


def widget_cells(page) -> list:
    """Cells whose outputs hold at least one rendered widget."""
    cells = page.locator(f"{PANEL} .jp-Notebook .jp-Cell").filter(
        has=page.locator(".jp-OutputArea-output .jupyter-widgets"))
    return [cells.nth(i) for i in range(cells.count())]


def interact(page, cell, timeout_s: float = 60) -> Interaction | None:
    """Move the cell's first slider, else pick another dropdown option, else press another toggle
    button; return whether the output in that cell changed (None: no such control), with the
    cell's figures before and, once the redraw is over, after."""
    index = _cell_index(page, cell)
    handles = cell.locator(".jp-OutputArea-output .noUi-handle")
    selects = cell.locator(".jp-OutputArea-output .widget-dropdown select")
    toggles = cell.locator(".jp-OutputArea-output .widget-toggle-buttons button:not(.mod-active)")
    if handles.count():
        kind, control = "slider", handles.first
    elif selects.count():
        kind, control = "dropdown", selects.first
    elif toggles.count():
        kind, control = "toggle buttons", toggles.first
    else:
        return None
    control.scroll_into_view_if_needed()
    shown = figures(cell)
    before = cell.evaluate(_SIGNATURE_JS)
    if kind == "slider":
        control.focus()
        page.keyboard.press("ArrowRight")
        after = _wait_for_change(page, cell, before, timeout_s)
        if after == before:  # at the maximum: move the other way
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowLeft")
            after = _wait_for_change(page, cell, before, timeout_s)
    elif kind == "dropdown":
        options = control.locator("option").all_inner_texts()
        current = control.evaluate("(s) => s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : ''")
        others = [o for o in options if o != current]
        if not others:
            return Interaction(kind, index, False, figures_before=shown, figures_after=shown)
        control.select_option(label=others[0])
        after = _wait_for_change(page, cell, before, timeout_s)
    else:
        control.click()
        after = _wait_for_change(page, cell, before, timeout_s)
    redrawn = _wait_for_figures(cell, len(shown), timeout_s) if after != before else shown
    return Interaction(kind, index, after != before, before, after, shown, redrawn)
