"""Exercise checks shared by every chapter.

A chapter module ``course/exercises/chNN.py`` registers one check per exercise::

    @exercise("1.1", "Depthwise separable block", points=2)
    def _(block_cls):
        ...                                   # raise ExerciseFailed("expected ..., got ...")
        return "output (2, 64, 56, 56), 8,768 parameters"

and a notebook calls ``check("1.1", MyBlock)``. ``check`` turns every way the learner's
code can go wrong into one ``ExerciseFailed`` with a message a learner can act on, and
records the outcome (in this process, and as a JSON line in ``$COURSE_GRADE_REPORT`` when
set) so ``course.assignments.grade`` can score a notebook.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "ExerciseFailed",
    "Exercise",
    "Outcome",
    "exercise",
    "check",
    "exercises_for",
    "get_exercise",
    "results",
    "reset_results",
    "GRADE_REPORT_ENV",
]

GRADE_REPORT_ENV = "COURSE_GRADE_REPORT"
_ID_RE = re.compile(r"^(\d+)\.\d+[a-z]?$")


class ExerciseFailed(AssertionError):
    """A check did not pass; the message says what is wrong (expected vs got)."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    points: int
    fn: Callable[..., str]

    @property
    def chapter(self) -> int:
        return _chapter_of(self.id)


@dataclass(frozen=True)
class Outcome:
    id: str
    title: str
    points: int
    passed: bool
    message: str

    def as_json(self) -> dict:
        return {"id": self.id, "title": self.title, "points": self.points,
                "passed": self.passed, "message": self.message}


_REGISTRY: dict[str, Exercise] = {}
_RESULTS: dict[str, Outcome] = {}


def _chapter_of(id: str) -> int:
    match = _ID_RE.match(id) if isinstance(id, str) else None
    if match is None:
        raise ValueError(f"id={id!r}: an exercise id is '<chapter>.<number>', e.g. '1.1' or '3.2'")
    return int(match.group(1))


def exercise(id: str, title: str, points: int = 1):
    """Register ``fn(*args, **kwargs) -> str`` as the check for exercise ``id``.

    The function returns a short success detail or raises ``ExerciseFailed``.
    Re-registering the same function (a module reload) replaces it; a different function
    under a taken id is a ValueError, so two chapters cannot silently share an id.
    """
    _chapter_of(id)
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"title={title!r}: a non-empty string is required")
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points={points!r}: a positive integer is required")

    def register(fn: Callable[..., str]) -> Callable[..., str]:
        if not callable(fn):
            raise ValueError(f"fn={fn!r}: the check must be callable")
        old = _REGISTRY.get(id)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"id={id!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}; "
                "each exercise id must be unique")
        _REGISTRY[id] = Exercise(id=id, title=title.strip(), points=points, fn=fn)
        return fn

    return register


def _chapter_module(chapter: int) -> str:
    return f"{__name__}.ch{chapter:02d}"


def get_exercise(id: str) -> Exercise:
    """The registered exercise ``id``, importing its chapter module if needed."""
    chapter = _chapter_of(id)
    if id not in _REGISTRY:
        try:
            importlib.import_module(_chapter_module(chapter))
        except ModuleNotFoundError as exc:
            if exc.name != _chapter_module(chapter):
                raise
    if id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY, key=_sort_key)) or "none"
        raise ValueError(f"id={id!r}: no such exercise (registered: {known})")
    return _REGISTRY[id]


def _sort_key(id: str) -> tuple:
    head, _, tail = id.partition(".")
    number = re.match(r"\d+", tail)
    return (int(head), int(number.group()) if number else 0, tail)


def exercises_for(chapter: int) -> list[Exercise]:
    """The exercises of one chapter (imports ``course.exercises.chNN``), in id order."""
    if isinstance(chapter, bool) or not isinstance(chapter, int) or not 0 <= chapter <= 99:
        raise ValueError(f"chapter={chapter!r}: an integer from 0 to 99 is required")
    try:
        importlib.import_module(_chapter_module(chapter))
    except ModuleNotFoundError as exc:
        if exc.name != _chapter_module(chapter):
            raise
        raise ValueError(f"chapter={chapter}: there is no check module {_chapter_module(chapter)}") from None
    found = [ex for ex in _REGISTRY.values() if ex.chapter == chapter]
    return sorted(found, key=lambda ex: _sort_key(ex.id))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIR = os.path.dirname(os.__file__)


def _is_library(filename: str) -> bool:
    return (filename.startswith((_PACKAGE_DIR + os.sep, _STDLIB_DIR + os.sep))
            or "site-packages" in filename or "dist-packages" in filename)


def _learner_frame(exc: BaseException) -> str:
    """Innermost function of the learner's own code in the traceback, e.g. ``MyBlock.forward``.

    Frames inside installed libraries (torch, ...) and this package are skipped, so a shape
    error raised deep in ``F.conv2d`` is reported at the learner's line that called it.
    """
    names = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not _is_library(code.co_filename):
            names.append(getattr(code, "co_qualname", code.co_name))
        tb = tb.tb_next
    return names[-1] if names else ""


def _record(ex: Exercise, passed: bool, message: str) -> None:
    outcome = Outcome(ex.id, ex.title, ex.points, passed, message)
    _RESULTS[ex.id] = outcome
    path = os.environ.get(GRADE_REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(outcome.as_json(), ensure_ascii=False) + "\n")


def check(id: str, *args, **kwargs) -> None:
    """Run the check for exercise ``id`` on the learner's code and print the verdict.

    Raises ``ExerciseFailed`` (with what is wrong, or that the exercise is not done yet)
    instead of whatever the learner's code raised; the original stays as ``__cause__``.
    """
    ex = get_exercise(id)
    head = f"Exercise {ex.id} — {ex.title}"
    try:
        detail = ex.fn(*args, **kwargs)
    except NotImplementedError as exc:
        where = _learner_frame(exc)
        where = f" (`{where}` still raises NotImplementedError)" if where and where != "<module>" else ""
        message = (f"not done yet{where}. Write your code under `# YOUR CODE HERE` in place of "
                   "`raise NotImplementedError()` in the cell that defines it, run that cell, "
                   "then run this check again.")
        _record(ex, False, message)
        raise ExerciseFailed(f"{head}: {message}") from None
    except ExerciseFailed as exc:
        message = str(exc) or "check failed"
        _record(ex, False, message)
        raise ExerciseFailed(f"{head}: {message}") from None
    except AssertionError as exc:
        message = str(exc) or "an assertion failed"
        _record(ex, False, message)
        raise ExerciseFailed(f"{head}: {message}") from exc
    except Exception as exc:
        where = _learner_frame(exc)
        where = f" in `{where}`" if where and where != "<module>" else ""
        message = f"your code raised {type(exc).__name__}{where}: {exc}"
        _record(ex, False, message)
        raise ExerciseFailed(f"{head}: {message}") from exc
    detail = "" if detail is None else str(detail)
    _record(ex, True, detail or "passed")
    suffix = f" ({detail})" if detail else ""
    print(f"✔ {head}: passed{suffix}")


def results() -> dict[str, Outcome]:
    """Outcomes of the checks run in this process (latest per id)."""
    return dict(_RESULTS)


def reset_results() -> None:
    """Forget the recorded outcomes (tests; a fresh attempt)."""
    _RESULTS.clear()


def assert_same_outputs(learner, reference, x, *, where: str = "", order: str = "", hint: str = "",
                        atol: float = 1e-4):
    """Load the reference's weights into the learner's module by position, then compare outputs.

    The reference gets random BatchNorm statistics first, so a learner's model that skips a BN
    cannot pass. ``order`` names the expected tensor order, ``hint`` the usual cause of a
    mismatch; both go into the ExerciseFailed message. Returns the learner's output.
    """
    import torch

    from ..models import load_torchvision_weights, randomize_batchnorm

    prefix = f"{where}: " if where else ""
    randomize_batchnorm(reference)
    reference.eval()
    learner.eval()
    try:
        load_torchvision_weights(learner, reference)
    except (ValueError, RuntimeError) as exc:
        raise ExerciseFailed(f"{prefix}could not load the reference weights into yours"
                             f"{f' (same tensors in the same order: {order})' if order else ''}: {exc}") from None
    with torch.no_grad():
        y, want = learner(x), reference(x)
    if y.shape != want.shape:
        raise ExerciseFailed(f"{prefix}output shape for input {tuple(x.shape)}: expected {tuple(want.shape)}, "
                             f"got {tuple(y.shape)}")
    diff = (y - want).abs().max().item()
    if diff > atol:
        raise ExerciseFailed(f"{prefix}with the reference weights loaded, outputs differ by up to {diff:.3g}"
                             f"{f' ({hint})' if hint else ''}")
    return y
