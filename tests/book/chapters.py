"""The book's chapters and the assignment each one links to (one place for tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# docname -> assignment name (notebooks/<name>/<name>.ipynb); see the assignments
# contract: a few chapters share one assignment.
CHAPTERS: dict[str, str] = {
    "book/activations": "activations",
    "book/preprocessing": "preprocessing_init",
    "book/initialization": "preprocessing_init",
    "book/batchnorm": "batchnorm",
    "book/normalization": "normalization",
    "book/gradcheck": "gradcheck",
    "book/babysitting": "training",
    "book/hyperparameters": "training",
}
# pages without an assignment
OTHER_PAGES = ["book/intro", "book/training_loop", "book/summary", "book/bibliography"]
# pages that teach: each has computed, captioned figures and math
TEACHING_PAGES = [*CHAPTERS, "book/training_loop"]


def toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def all_docnames() -> list[str]:
    """Every document of _toc.yml, root first, in reading order."""
    data = toc()
    names = [data["root"]]
    for part in data.get("parts", []):
        for chapter in part.get("chapters", []):
            names.append(chapter["file"])
            names += [s["file"] for s in chapter.get("sections", [])]
    return names


# pages the theme writes besides the documents of _toc.yml (index.html is only a
# redirect to the root document, checked on its own)
EXTRA_PAGES = ["genindex.html", "search.html"]


def site_pages() -> list[str]:
    """The pages a reader can reach: the toc's documents plus the theme's pages."""
    return EXTRA_PAGES + [f"{d}.html" for d in all_docnames()]


def notebook(name: str) -> Path:
    return ROOT / "notebooks" / name / f"{name}.ipynb"
