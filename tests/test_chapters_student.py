"""Every chapter, student version: it runs up to the first check, which fails helpfully; grading gives zero (slow)."""

import pytest
from nbformat.v4 import new_notebook

from course import assignments
from course.assignments import build, grade

CHAPTERS = sorted(assignments.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _first_error(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, output
    return None, None


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_student_version_fails_at_first_check_and_scores_zero(path, tmp_path):
    student = build([path], tmp_path)
    assert student[tmp_path / path.name] >= 1, f"{path.name} has no ### BEGIN SOLUTION region"
    report = grade(tmp_path / path.name, cwd=path.parent)
    assert report.rows and report.earned == 0, report.format()

    index, error = _first_error(report.notebook)
    assert error is not None, "the student version ran without any error"
    first_check = next(i for i, c in enumerate(report.notebook.cells)
                       if c.cell_type == "code" and assignments.exercise_ids(new_notebook(cells=[c])))
    assert index == first_check, (
        f"first error in cell {index} ({error['ename']}: {error['evalue']}), "
        f"expected it at the first check cell {first_check}")
    assert error["ename"] == "ExerciseFailed"
    assert "not done yet" in error["evalue"] and "# YOUR CODE HERE" in error["evalue"]
