"""Student versions and grading on a small fixture notebook (fast); the real chapters are in test_chapters_*.py."""

import copy
import csv
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from course import assignments
from course.assignments import SolutionMarkerError, build, grade, strip_solutions, student_notebook

FIXTURES = Path(__file__).parent / "fixtures"
DEMO = FIXTURES / "demo_course.ipynb"

sys.path.insert(0, str(FIXTURES))
import demo_checks  # noqa: E402,F401  titles and points of exercises 0.1/0.2 for the report


def _with_outputs(nb):
    """The demo notebook as if it had been run: outputs and execution counts on every code cell."""
    nb = copy.deepcopy(nb)
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
        cell.outputs = [new_output("stream", name="stdout", text=f"output {count}\n")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


# --------------------------------------------------------------------------- build (fast)


def test_strip_solutions_keeps_indentation_and_rest():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nprint(f)\n"
    stripped, regions = strip_solutions(source)
    assert regions == 1
    assert stripped == ("def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
                        "print(f)\n")


def test_strip_solutions_without_markers_is_identity():
    source = "x = 1  # BEGIN SOLUTION is only special on a line of its own\n"
    assert strip_solutions(source) == (source, 0)


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\na\n### BEGIN SOLUTION\nb\n### END SOLUTION\n", "nested '### BEGIN SOLUTION' at line 3"),
    ("x = 1\n### BEGIN SOLUTION\na = 2\n", "'### BEGIN SOLUTION' at line 2 has no '### END SOLUTION'"),
    ("a = 2\n### END SOLUTION\n", "'### END SOLUTION' at line 2 without a '### BEGIN SOLUTION'"),
])
def test_marker_errors_name_notebook_and_cell(tmp_path, source, problem):
    nb = new_notebook(cells=[new_code_cell("x = 0"), new_code_cell(source)])
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(SolutionMarkerError) as info:
        build([path], tmp_path / "student")
    message = str(info.value)
    assert message.startswith("07_broken.ipynb, cell 1")
    assert problem in message
    assert not (tmp_path / "student").exists()  # nothing written when any notebook is malformed


def test_build_fixture(tmp_path):
    teacher = _with_outputs(nbformat.read(DEMO, as_version=4))
    source = tmp_path / "teacher" / DEMO.name
    source.parent.mkdir()
    nbformat.write(teacher, source)

    written = build([source], tmp_path / "student")
    target = tmp_path / "student" / DEMO.name
    assert written == {target: 2}
    student = nbformat.read(target, as_version=4)
    nbformat.validate(student)
    assert "widgets" not in student.metadata
    assert len(student.cells) == len(teacher.cells)
    stubbed = 0
    for before, after in zip(teacher.cells, student.cells):
        if after.cell_type == "code":
            assert after.outputs == [] and after.execution_count is None
        if "### BEGIN SOLUTION" in before.source:
            stubbed += 1
            assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in after.source
            assert "SOLUTION" not in after.source
            assert after.source.splitlines()[0] == before.source.splitlines()[0]  # the def line stays
        else:
            assert after.source == before.source
            assert after.metadata == before.metadata
    assert stubbed == 2


def test_student_notebook_leaves_input_untouched():
    teacher = _with_outputs(nbformat.read(DEMO, as_version=4))
    snapshot = copy.deepcopy(teacher)
    student_notebook(teacher)
    assert teacher == snapshot


def test_build_refuses_to_overwrite_teacher_version():
    with pytest.raises(ValueError, match="would overwrite the teacher version"):
        build([DEMO], FIXTURES)


def test_build_rejects_missing_notebook(tmp_path):
    with pytest.raises(ValueError, match=r"notebooks: .*nope\.ipynb' is not an existing \.ipynb file"):
        build([tmp_path / "nope.ipynb"], tmp_path / "out")


# --------------------------------------------------------------------------- grade (fixture, a few s)


def _student_demo(tmp_path):
    build([DEMO], tmp_path)
    return tmp_path / DEMO.name


def test_grade_teacher_full_marks_student_zero(tmp_path):
    teacher = grade(DEMO)
    assert [(r.id, r.earned, r.points, r.status) for r in teacher.rows] == [
        ("0.1", 2, 2, "passed"), ("0.2", 1, 1, "passed")]
    assert (teacher.earned, teacher.possible, teacher.errors) == (3, 3, [])

    student = grade(_student_demo(tmp_path), cwd=FIXTURES)
    assert [(r.id, r.earned, r.status) for r in student.rows] == [("0.1", 0, "failed"), ("0.2", 0, "failed")]
    assert all(r.message.startswith("not done yet") for r in student.rows)
    assert student.earned == 0 and student.errors == []
    text = student.format()
    assert "0.1   Square a number" in text and "0/2" in text and text.endswith("Total: 0/3 (0%)")


def test_grade_counts_unreached_exercise_as_zero(tmp_path):
    nb = nbformat.read(DEMO, as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith('check("0.2"'))
    cell.source = "import time\ntime.sleep(60)\n" + cell.source
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    report = grade(path, timeout=3, cwd=FIXTURES)
    assert [(r.id, r.earned, r.status) for r in report.rows] == [("0.1", 2, "passed"), ("0.2", 0, "not reached")]
    assert any("KeyboardInterrupt" in e for e in report.errors)
    assert "not reached" in report.format()


def test_grade_scores_deleted_check_as_not_reached(tmp_path):
    nb = nbformat.read(DEMO, as_version=4)
    nb.cells = [c for c in nb.cells if not c.source.startswith('check("0.2"')]
    path = tmp_path / "deleted.ipynb"
    nbformat.write(nb, path)
    report = grade(path, cwd=FIXTURES, expected=["0.1", "0.2"])
    assert [(r.id, r.earned, r.points, r.status) for r in report.rows] == [
        ("0.1", 2, 2, "passed"), ("0.2", 0, 1, "not reached")]
    assert (report.earned, report.possible) == (2, 3)


def test_chapter_exercise_ids_from_file_name(tmp_path):
    assert assignments.chapter_exercise_ids(tmp_path / "demo_course.ipynb") == []
    assert assignments.chapter_exercise_ids(tmp_path / "42_no_such_chapter.ipynb") == []


def test_cli_grade_prints_table_and_writes_csv(tmp_path, capsys):
    partial = nbformat.read(DEMO, as_version=4)
    cell = next(c for c in partial.cells if c.source.startswith("def square"))
    cell.source = "def square(x):\n    return x + x"
    path = tmp_path / "alice.ipynb"
    nbformat.write(partial, path)
    table = tmp_path / "scores.csv"
    assert assignments.main(["grade", str(path), "--timeout", "60", "--cwd", str(FIXTURES), "--csv", str(table)]) == 0
    out = capsys.readouterr().out
    assert "failed: square(3): expected 9, got 6" in out
    assert "Total: 1/3 (33%)" in out
    rows = list(csv.DictReader(table.open()))
    assert [(r["id"], r["earned"], r["status"]) for r in rows] == [("0.1", "0", "failed"), ("0.2", "1", "passed")]


def test_cli_bad_input_exit_code(tmp_path, capsys):
    assert assignments.main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "path=" in capsys.readouterr().err


def test_hidden_in_student_cells_are_dropped_from_the_student_version_only(tmp_path):
    teacher = nbformat.read(DEMO, as_version=4)
    answer = new_code_cell("def square(x):\n    return x * x  # the lesson's worked answer",
                           metadata={"tags": ["hidden-in-student"]})
    other_tag = new_code_cell("print('tagged, but not hidden')", metadata={"tags": ["raises-exception"]})
    teacher.cells[1:1] = [answer, other_tag]
    source = tmp_path / "teacher" / "08_hidden.ipynb"
    source.parent.mkdir()
    nbformat.write(teacher, source)

    build([source], tmp_path / "student")
    student = nbformat.read(tmp_path / "student" / source.name, as_version=4)
    assert len(student.cells) == len(teacher.cells) - 1
    assert "the lesson's worked answer" not in "".join(c.source for c in student.cells)
    assert any(c.source == other_tag.source for c in student.cells)
    assert nbformat.read(source, as_version=4).cells[1].source == answer.source  # the teacher keeps it
