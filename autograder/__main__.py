"""``python -m autograder``: see :mod:`autograder.pipeline.cli`."""

import sys

import autograder.pipeline._fastimport  # noqa: F401 - before anything imports nbformat
from autograder.pipeline.cli import main

sys.exit(main())
