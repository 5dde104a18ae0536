"""Every chapter, teacher version: all its checks pass and grading gives full marks (slow: runs each notebook)."""

import nbformat
import pytest

from course import assignments
from course.assignments import grade

CHAPTERS = sorted(assignments.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))



@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_teacher_version_passes_every_check(path):
    report = grade(path)
    assert report.rows, f"{path.name} calls no check(...)"
    checked = assignments.exercise_ids(nbformat.read(path, as_version=4))
    registered = assignments.chapter_exercise_ids(path)
    assert sorted(checked) == sorted(registered), (
        f"{path.name} checks {checked}, course/exercises registers {registered} for this chapter")
    failed = [f"{r.id} {r.status}: {r.message}" for r in report.rows if r.status != "passed"]
    assert not failed, "\n".join(failed)
    assert report.earned == report.possible
    assert report.errors == [], "\n".join(report.errors)
