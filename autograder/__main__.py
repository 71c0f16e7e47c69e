"""``python -m autograder``: see :mod:`autograder.cli`."""

import sys

import autograder._fastimport  # noqa: F401 - before anything imports nbformat
from autograder.cli import main

sys.exit(main())
