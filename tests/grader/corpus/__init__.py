"""Adversarial submissions, generated from the batchnorm solution and release notebooks.

Nothing here is hand-written JSON: :func:`build` reads
``solutions/batchnorm/batchnorm.ipynb`` (the answers) and
``notebooks/batchnorm/batchnorm.ipynb`` (the stubs a student starts from) and
writes one folder per student, each trying one item of the threat model in
DESIGN.md. :data:`CASES` says, for each, what the grade must be and which
message must reach the report.
"""

from tests.grader.corpus.build import CASES, Case, build

__all__ = ["CASES", "Case", "build"]
