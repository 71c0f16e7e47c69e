"""Every assignment: the solution gets full marks from the verification, exactly
as in the notebook's own run, and the untouched release notebook gets none."""

from __future__ import annotations

import pytest

from autograder.authoring import assignment
from autograder.pipeline import worker
from autograder.sandbox import isolation as sandbox
from tests.grader.conftest import ROOT

pytestmark = [
    pytest.mark.grader,
    pytest.mark.slow,
    pytest.mark.xdist_group("grader-e2e"),
]
NAMES = assignment.available()
LIMITS = sandbox.Limits(cell_timeout=300, call_timeout=120, notebook_timeout=900)


@pytest.mark.parametrize("name", NAMES)
def test_solution_full_release_zero(name, policy):
    spec, _ = assignment.load(name)
    source = str(assignment.source_path(name))
    worker._preload({name: spec}, LIMITS, policy, {})
    for kind, path in (
        ("solution", source),
        ("release", ROOT / "notebooks" / name / f"{name}.ipynb"),
    ):
        job = {"student": kind, "assignment": name, "path": str(path), "source": source}
        res = worker.grade(job, spec, LIMITS, policy)
        assert res["status"] == "graded", res["messages"]
        for gid, cell in res["cells"].items():
            assert cell["in_kernel"] == cell["score"], (kind, gid, cell)
            if kind == "solution" and not cell.get("manual"):
                assert cell["score"] == cell["max_score"], (gid, cell["report"])
        if kind == "solution":
            assert res["score"] == spec.auto_max_score > 0
        else:
            assert res["score"] == 0.0
        assert res["max_score"] == spec.max_score
