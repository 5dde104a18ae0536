"""The exercise framework: registration, verdicts, messages, grade-report lines."""

import json
import sys
from pathlib import Path

import pytest

import course.exercises as ex
from course.exercises import ExerciseFailed, check, exercise, exercises_for, get_exercise

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import demo_checks  # noqa: E402,F401  registers exercises 0.1 and 0.2


def square(x):
    return x * x


def not_done(x):
    # YOUR CODE HERE
    raise NotImplementedError()


def wrong(x):
    return x + x


def crashes(x):
    return [1, 2][x + 5]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(ex.GRADE_REPORT_ENV, raising=False)
    ex.reset_results()


def test_pass_prints_verdict_and_records(capsys):
    check("0.1", square)
    out = capsys.readouterr().out
    assert out.strip() == "✔ Exercise 0.1 — Square a number: passed (3 inputs match)"
    outcome = ex.results()["0.1"]
    assert outcome.passed and outcome.points == 2


def test_wrong_answer_names_expected_and_got():
    with pytest.raises(ExerciseFailed, match=r"Exercise 0\.1 — Square a number: square\(3\): expected 9, got 6"):
        check("0.1", wrong)
    assert ex.results()["0.1"].passed is False


def test_not_implemented_says_not_done_and_where():
    with pytest.raises(ExerciseFailed) as info:
        check("0.1", not_done)
    message = str(info.value)
    assert "not done yet" in message and "`not_done`" in message
    assert "# YOUR CODE HERE" in message
    assert info.value.__cause__ is None  # the learner sees one clean message


def test_other_exception_is_named_with_learner_function():
    with pytest.raises(ExerciseFailed, match=r"your code raised IndexError in `crashes`: list index out of range") as info:
        check("0.1", crashes)
    assert isinstance(info.value.__cause__, IndexError)


def test_library_frames_are_skipped_when_naming_the_culprit():
    def bad_call(x):
        return json.loads("{")
    with pytest.raises(ExerciseFailed, match=r"JSONDecodeError in `.*bad_call`"):
        check("0.1", bad_call)


def test_grade_report_lines(tmp_path, monkeypatch):
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(ex.GRADE_REPORT_ENV, str(report))
    check("0.1", square)
    with pytest.raises(ExerciseFailed):
        check("0.2", lambda text: 0)
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["passed"], r["points"]) for r in lines] == [("0.1", True, 2), ("0.2", False, 1)]
    assert set(lines[0]) == {"id", "title", "points", "passed", "message"}
    assert "count_vowels('MobileNet'): expected 4, got 0" in lines[1]["message"]


def test_exercise_is_an_assertion_error():
    assert issubclass(ExerciseFailed, AssertionError)


def test_unknown_id_lists_registered():
    with pytest.raises(ValueError, match=r"id='0\.9': no such exercise \(registered: .*0\.1, 0\.2"):
        check("0.9", square)


@pytest.mark.parametrize("bad", ["", "1", "a.b", "1.1.1", 11])
def test_malformed_id_rejected(bad):
    with pytest.raises(ValueError, match="id="):
        exercise(bad, "title")


@pytest.mark.parametrize("points", [0, -1, 1.5, True])
def test_bad_points_rejected(points):
    with pytest.raises(ValueError, match="points="):
        exercise("0.7", "title", points=points)


def test_duplicate_id_from_another_function_rejected():
    with pytest.raises(ValueError, match="already registered"):
        exercise("0.1", "Something else")(lambda: "ok")


def test_get_exercise_metadata():
    info = get_exercise("0.2")
    assert (info.id, info.title, info.points, info.chapter) == ("0.2", "Count vowels", 1, 0)


def test_exercises_for_missing_chapter_module():
    with pytest.raises(ValueError, match="chapter=0: there is no check module course.exercises.ch00"):
        exercises_for(0)
    with pytest.raises(ValueError, match="chapter="):
        exercises_for(-1)


CHAPTERS = [n for n in range(1, 7)
            if (Path(ex.__file__).parent / f"ch{n:02d}.py").exists()]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_modules_register_their_own_ids(chapter):
    found = exercises_for(chapter)
    assert found, f"course/exercises/ch{chapter:02d}.py registers no exercise"
    assert all(e.id.startswith(f"{chapter}.") and e.points >= 1 for e in found)
    assert [e.id for e in found] == sorted({e.id for e in found}, key=ex._sort_key)
