"""The autograder's folders are its architecture: each imports only those above it.

checks (what is graded) < authoring (specs, generation) < sandbox (isolation,
kernel, runner) < outputs (gradebook, feedback, reports) < pipeline (intake,
pool, verification, the commands). In particular the checks never import the
runner or anything else that runs student code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.grader

ROOT = Path(__file__).resolve().parents[2] / "autograder"
ORDER = ["checks", "authoring", "sandbox", "outputs", "pipeline"]


def _imports(path: Path) -> set[str]:
    """Subpackages of autograder that ``path`` imports (anywhere in the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "autograder" and len(parts) > 1 and parts[1] in ORDER:
                found.add(parts[1])
    return found


def test_every_module_lives_in_a_concern_folder():
    loose = sorted(
        p.name
        for p in ROOT.glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )
    assert loose == [], f"modules outside the concern folders: {loose}"


@pytest.mark.parametrize("package", ORDER)
def test_imports_point_up_the_list(package):
    allowed = set(ORDER[: ORDER.index(package) + 1])
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = _imports(path) - allowed
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert bad == {}, f"{package} may import only {sorted(allowed)}; found {bad}"
