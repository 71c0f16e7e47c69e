"""The build forgets every executed page when the figure rule changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.book.chapters import ROOT

pytestmark = pytest.mark.book


def _build_module():
    path = ROOT / "book" / "_tools" / "build.py"
    spec = importlib.util.spec_from_file_location("book_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executed(output: Path) -> None:
    for name in (".doctrees", ".jupyter_cache"):
        (output / name).mkdir(parents=True, exist_ok=True)
        (output / name / "record").write_text("a page executed before\n")


def test_a_changed_rule_forgets_the_executed_pages(tmp_path: Path):
    forget = _build_module().forget_pages_drawn_by_another_rule
    root, output = tmp_path / "repo", tmp_path / "out"
    (root / "book").mkdir(parents=True)
    rule = root / "book" / "matplotlibrc"
    rule.write_text("figure.dpi: 105\n")

    forget(root, output)  # first build: nothing to forget, the rule is stamped
    _executed(output)
    forget(root, output)  # same rule: the cache stays
    assert (output / ".jupyter_cache" / "record").is_file()
    assert (output / ".doctrees" / "record").is_file()

    rule.write_text("figure.dpi: 150\n")
    forget(root, output)  # another rule: every page must run again
    assert not (output / ".jupyter_cache").exists()
    assert not (output / ".doctrees").exists()

    _executed(output)
    forget(root, output)  # and the new rule is the one now stamped
    assert (output / ".jupyter_cache" / "record").is_file()
