"""The benchmark runner: every bench module has run(), tables keep every column."""

from __future__ import annotations

import importlib

import pytest

from benchmarks.__main__ import available, main, table


def test_every_benchmark_module_exposes_run():
    for name in available():
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        assert callable(getattr(mod, "run", None)), f"bench_{name}.py has no run()"
        assert mod.__doc__, f"bench_{name}.py needs a docstring saying what it measures"


def test_table_has_the_union_of_columns_and_formats_floats():
    text = table([{"a": 1.23456789, "b": "x"}, {"a": 2, "c": None}])
    lines = text.strip().splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[2] == "| 1.235 | x |  |"
    assert lines[3] == "| 2 |  |  |"


def test_unknown_benchmark_is_an_error(capsys):
    assert main(["no-such-benchmark"]) == 2
    assert "available" in capsys.readouterr().out


@pytest.mark.parametrize("rows", [[]])
def test_empty_table(rows):
    assert table(rows) == "(no rows)\n"
