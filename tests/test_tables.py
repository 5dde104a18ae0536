"""course.tables: the one text-table formatter."""

import pytest

from course.tables import format_value, text_table


def test_columns_default_to_every_key_in_order_of_first_appearance():
    text = text_table([{"a": 1234, "b": 1.5}, {"a": 7, "b": None, "c": "x"}])
    head, rule, first, second = text.splitlines()
    assert head.split() == ["a", "b", "c"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert first.split() == ["1,234", "1.5", "—"] and second.split() == ["7", "—", "x"]


def test_headers_formats_and_alignment():
    rows = [{"name": "long-name", "ms": 3.14159, "n": 5}, {"name": "b", "ms": 12.0, "n": 123456}]
    lines = text_table(rows, {"name": "model", "ms": "time", "n": "count"}, formats={"ms": "{:.1f}"},
                       title="T").splitlines()
    assert lines[0] == "T" and lines[1].split() == ["model", "time", "count"]
    assert lines[3].startswith("long-name") and lines[4].startswith("b ")  # names left-aligned
    assert lines[3].endswith("      5") and lines[4].endswith("123,456")  # numbers right-aligned
    assert "3.1" in lines[3] and "12.0" in lines[4]
    assert len({len(line) for line in lines[1:]}) == 1


def test_format_value():
    assert [format_value(v) for v in (None, True, 1234567, 0.000123456, 94.8612, 12345.678, "x")] == \
        ["—", "True", "1,234,567", "0.0001235", "94.86", "12,345.7", "x"]
    assert text_table([]) == "(no rows)"


def test_align_sets_a_columns_side_and_rejects_other_values():
    rows = [{"step": "first", "s": 1.5, "summary": "short"}, {"step": "b", "s": 12.25, "summary": "a longer one"}]
    first, second = text_table(rows, align={"summary": "<", "step": ">"}).splitlines()[2:]
    assert first.index("short") == second.index("a longer one") and first.endswith("short")  # left, no padding
    assert first.startswith("first") and second.startswith("    b ")  # right-aligned
    with pytest.raises(ValueError, match="align"):
        text_table(rows, align={"summary": "centre"})
