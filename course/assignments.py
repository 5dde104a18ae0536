"""Student versions of the chapters, and grading of filled-in notebooks.

``build`` replaces every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region with a stub
(the nbgrader convention, without nbgrader's gradebook), drops the cells tagged
``hidden-in-student`` (a lesson cell that would give an exercise away) and clears outputs. ``grade`` runs
a notebook in a fresh kernel of this environment with ``COURSE_GRADE_REPORT`` set, so every
``course.exercises.check`` call appends its verdict, and turns those lines into a score table.

    python -m course.assignments build [--out student/] [notebooks...]
    python -m course.assignments grade NOTEBOOK... [--timeout S] [--full] [--cwd DIR] [--csv FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "SolutionMarkerError", "HIDDEN_TAG", "strip_solutions", "student_notebook", "build",
    "run_notebook", "exercise_ids", "chapter_exercise_ids", "GradeRow", "GradeReport", "grade", "main",
]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
_MARKER = re.compile(r"^(?P<indent>\s*)(?:#+|//)\s*(?P<which>BEGIN|END) SOLUTION\s*$")
_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d+\.\d+[a-z]?)["']""")
HIDDEN_TAG = "hidden-in-student"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)


class SolutionMarkerError(ValueError):
    """A solution region is malformed (nested BEGIN, END without BEGIN, missing END)."""


# --------------------------------------------------------------------------- build


def strip_solutions(source: str, stub: tuple[str, ...] = CODE_STUB, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region in ``source`` by ``stub`` at the BEGIN marker's indentation.

    Returns the new source and the number of regions replaced.
    """
    out: list[str] = []
    begin_line = None
    regions = 0
    for number, line in enumerate(source.splitlines(), start=1):
        match = _MARKER.match(line)
        if match and match["which"] == "BEGIN":
            if begin_line is not None:
                raise SolutionMarkerError(
                    f"{where}: nested '### {BEGIN}' at line {number} (the region opened at "
                    f"line {begin_line} has no '### {END}' before it)")
            begin_line = number
            out.extend(match["indent"] + s for s in stub)
        elif match:
            if begin_line is None:
                raise SolutionMarkerError(f"{where}: '### {END}' at line {number} without a '### {BEGIN}'")
            begin_line = None
            regions += 1
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise SolutionMarkerError(f"{where}: '### {BEGIN}' at line {begin_line} has no '### {END}'")
    if not regions:
        return source, 0
    return "\n".join(out) + ("\n" if source.endswith("\n") else ""), regions


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` with solutions stubbed, ``hidden-in-student`` cells removed, and outputs,
    execution counts and saved widget state cleared. Cell numbers in marker errors are the teacher's."""
    student = copy.deepcopy(nb)
    student.metadata.pop("widgets", None)
    regions = 0
    kept = []
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}" + (f" (id {cell.get('id')})" if cell.get("id") else "")
        if cell.cell_type == "code":
            cell.source, n = strip_solutions(cell.source, CODE_STUB, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source, n = strip_solutions(cell.source, MARKDOWN_STUB, where)
        else:
            n = 0
        regions += n
        if HIDDEN_TAG not in cell.get("metadata", {}).get("tags", []):
            kept.append(cell)
    student.cells = kept
    return student, regions


def build(notebooks: list[Path | str] | None = None, out: Path | str = "student") -> dict[Path, int]:
    """Write the student version of each notebook (default: every ``notebooks/*.ipynb``) into ``out``.

    All notebooks are checked before any file is written, so a marker error leaves ``out`` untouched.
    Returns {written path: number of solution regions replaced}.
    """
    paths = [Path(p) for p in notebooks] if notebooks else sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        raise ValueError(f"notebooks={notebooks!r}: no notebooks given and none in {NOTEBOOKS}")
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"notebooks: {str(path)!r} is not an existing .ipynb file")
    out = Path(out)
    for path in paths:
        if out.resolve() == path.parent.resolve():
            raise ValueError(f"out={str(out)!r}: would overwrite the teacher version {path}; choose another folder")
    students = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        students.append((path, *student_notebook(nb, path.name)))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for path, nb, regions in students:
        target = out / path.name
        nbformat.write(nb, target)
        written[target] = regions
    return written


# --------------------------------------------------------------------------- run


def _current_env_kernel_manager():
    """A kernel manager class whose kernel is ``sys.executable -m ipykernel_launcher``.

    The notebook's stored kernelspec or a user-wide ``python3`` spec could point to another
    Python; grading must use the environment the course is installed in.
    """
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnvKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._kernel_spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name=f"Python ({sys.executable})", language="python")

    return CurrentEnvKernelManager


SHELL_POLL_S = 0.02


def _polling_client_class():
    """nbclient's ``NotebookClient`` whose shell channel is polled every ``SHELL_POLL_S`` seconds.

    nbclient waits for a cell's ``execute_reply`` with one ``get_msg(timeout=<cell timeout>)``;
    after a cell whose output is an ipywidget, that wait sometimes misses a reply that has already
    arrived, so the kernel sits idle while the client hangs until the cell timeout
    (jupyter/nbclient#312). Asking the socket whether a message is ready, rather than waiting on
    its file descriptor, picks the reply up.
    """
    from queue import Empty

    from nbclient import NotebookClient

    class PollingNotebookClient(NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            channel = kc.shell_channel

            async def get_msg(timeout=None):
                deadline = None if timeout is None else time.monotonic() + timeout
                while not await channel.msg_ready():
                    if deadline is not None and time.monotonic() >= deadline:
                        raise Empty
                    await asyncio.sleep(SHELL_POLL_S)
                return await channel._recv()

            channel.get_msg = get_msg
            return kc

    return PollingNotebookClient


def run_notebook(nb: nbformat.NotebookNode | Path | str, *, cwd: Path | str | None = None,
                 timeout: float | None = 600, quick: bool | None = True, allow_errors: bool = True,
                 env: dict[str, str] | None = None) -> tuple[nbformat.NotebookNode, Exception | None]:
    """Execute a notebook in a fresh kernel of this environment; returns (executed nb, error).

    ``quick`` sets COURSE_QUICK to 1/0 (None leaves it as it is). With ``allow_errors=False``
    execution stops at the first failing cell and that ``CellExecutionError`` is returned.
    ``timeout`` is per cell: on expiry the kernel is interrupted and the next cells still run.
    """
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout={timeout!r}: a positive number of seconds (or None) is required")
    if isinstance(nb, (str, Path)):
        path = Path(nb)
        nb = nbformat.read(path, as_version=4)
        cwd = cwd if cwd is not None else path.parent
    nb = copy.deepcopy(nb)
    kernel_env = dict(os.environ)
    if quick is not None:
        kernel_env["COURSE_QUICK"] = "1" if quick else "0"
    kernel_env.update(env or {})
    client = _polling_client_class()(
        nb, timeout=timeout, allow_errors=allow_errors, interrupt_on_timeout=True,
        kernel_manager_class=_current_env_kernel_manager(), kernel_name="python3",
        resources={"metadata": {"path": str(cwd or Path.cwd())}})
    try:
        client.execute(env=kernel_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (CellExecutionError, DeadKernelError) as exc:
        return nb, exc
    return nb, None


# --------------------------------------------------------------------------- grade


def exercise_ids(nb: nbformat.NotebookNode) -> list[str]:
    """Exercise ids the notebook checks (``check("1.1", ...)`` calls), in order of appearance."""
    ids: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            ids += [i for i in _CHECK_CALL.findall(cell.source) if i not in ids]
    return ids


@dataclass
class GradeRow:
    id: str
    title: str
    points: int
    earned: int
    status: str  # "passed", "failed" or "not reached"
    message: str = ""


@dataclass
class GradeReport:
    path: Path
    rows: list[GradeRow]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    quick: bool | None = True
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)  # as executed

    @property
    def earned(self) -> int:
        return sum(r.earned for r in self.rows)

    @property
    def possible(self) -> int:
        return sum(r.points for r in self.rows)

    def format(self, width: int = 100) -> str:
        mode = {True: "quick mode", False: "full mode", None: "COURSE_QUICK as set"}[self.quick]
        lines = [f"Grading {self.path} ({mode}, ran in {self.seconds:.0f} s)"]
        title_w = max([len("exercise")] + [len(r.title) for r in self.rows])
        head = f"  {'id':<5} {'exercise':<{title_w}}  {'points':>6}  result"
        lines += [head, "  " + "-" * (len(head) - 2 + 20)]
        for r in self.rows:
            message = r.message.splitlines()[0] if r.message else ""
            if message.startswith("not done yet"):
                message = message.split(". ")[0]
            result = f"{r.status}: {message}" if message and r.status != "not reached" else r.status
            if len(result) > width:
                result = result[: width - 1] + "…"
            lines.append(f"  {r.id:<5} {r.title:<{title_w}}  {f'{r.earned}/{r.points}':>6}  {result}")
        share = f" ({100 * self.earned / self.possible:.0f}%)" if self.possible else ""
        lines.append(f"Total: {self.earned}/{self.possible}{share}")
        if self.errors:
            lines.append("Cells that raised an error (besides failed checks):")
            lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)

    __str__ = format


def _exercise_info(id: str, seen: dict) -> tuple[str, int]:
    from course.exercises import get_exercise

    if id in seen:
        return seen[id]["title"], int(seen[id]["points"])
    try:
        info = get_exercise(id)
        return info.title, info.points
    except ValueError:
        return "(unknown exercise)", 1


def _cell_errors(nb: nbformat.NotebookNode) -> list[str]:
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") != "ExerciseFailed":
                value = (output.get("evalue") or "").splitlines()
                errors.append(f"cell {index}: {output.get('ename')}: {value[0] if value else ''}")
    return errors


def chapter_exercise_ids(path: Path | str) -> list[str]:
    """Ids registered for the chapter a file name starts with (``01_…`` → ch01), else []."""
    from course.exercises import exercises_for

    match = re.match(r"(\d{2})_", Path(path).name)
    if not match:
        return []
    try:
        return [e.id for e in exercises_for(int(match.group(1)))]
    except ValueError:
        return []


def grade(path: Path | str, *, timeout: float | None = 600, quick: bool | None = True,
          cwd: Path | str | None = None, expected: list[str] | None = None) -> GradeReport:
    """Execute a filled-in notebook and score every exercise it checks.

    Errors do not stop the run, so later exercises are still graded; an exercise whose check
    never ran (kernel died, cell timed out before it, check cell deleted) scores 0 as
    "not reached". ``expected`` lists the exercises to score besides those the notebook
    checks; by default, those registered for the chapter named by the file (``01_…``).
    """
    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path={str(path)!r}: an existing .ipynb file is required")
    if cwd is not None and not Path(cwd).is_dir():
        raise ValueError(f"cwd={str(cwd)!r}: an existing folder is required")
    nb = nbformat.read(path, as_version=4)
    handle, report = tempfile.mkstemp(prefix="course-grade-", suffix=".jsonl")
    os.close(handle)
    start = time.perf_counter()
    try:
        executed, error = run_notebook(nb, cwd=cwd or path.parent, timeout=timeout, quick=quick,
                                       env={"COURSE_GRADE_REPORT": report})
        lines = Path(report).read_text(encoding="utf-8").splitlines()
    finally:
        os.unlink(report)
    seconds = time.perf_counter() - start
    seen: dict[str, dict] = {}
    for line in lines:
        record = json.loads(line)
        seen[record["id"]] = record
    from course.exercises import _sort_key

    expected = chapter_exercise_ids(path) if expected is None else list(expected)
    ids = sorted(set(exercise_ids(nb)) | set(seen) | set(expected), key=_sort_key)
    rows = []
    for id in ids:
        title, points = _exercise_info(id, seen)
        if id not in seen:
            rows.append(GradeRow(id, title, points, 0, "not reached"))
        else:
            passed = bool(seen[id]["passed"])
            rows.append(GradeRow(id, title, points, points if passed else 0,
                                 "passed" if passed else "failed", seen[id].get("message", "")))
    errors = _cell_errors(executed)
    if error is not None:
        errors.append(f"execution stopped: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return GradeReport(path, rows, errors, seconds, quick, executed)


# --------------------------------------------------------------------------- CLI


def _write_csv(reports: list[GradeReport], target: Path) -> None:
    new = not target.exists()
    with target.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["notebook", "id", "title", "earned", "points", "status", "message"])
        for report in reports:
            for r in report.rows:
                writer.writerow([str(report.path), r.id, r.title, r.earned, r.points, r.status, r.message])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.assignments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="write student versions (solutions stubbed, outputs cleared)")
    p_build.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    p_build.add_argument("--out", type=Path, default=Path("student"), help="output folder (default: student/)")
    p_grade = sub.add_parser("grade", help="execute filled-in notebooks and print a score table")
    p_grade.add_argument("notebooks", nargs="+", type=Path)
    p_grade.add_argument("--timeout", type=float, default=600, help="per-cell timeout in seconds (default 600)")
    p_grade.add_argument("--full", action="store_true", help="run at full size (default: COURSE_QUICK=1)")
    p_grade.add_argument("--cwd", type=Path, help="folder the notebook runs in (default: the notebook's folder)")
    p_grade.add_argument("--csv", type=Path, help="append one row per exercise to this CSV file")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for target, regions in build(args.notebooks or None, args.out).items():
                print(f"{target}: {regions} solution region(s) replaced")
            return 0
        reports = []
        for notebook in args.notebooks:
            report = grade(notebook, timeout=args.timeout, quick=not args.full, cwd=args.cwd)
            print(report.format(), end="\n\n")
            reports.append(report)
        if args.csv:
            _write_csv(reports, args.csv)
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
