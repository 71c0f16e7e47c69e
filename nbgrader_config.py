"""nbgrader looks for this file at the course root; the settings live in
autograder/authoring/nbgrader_config.py."""

load_subconfig("autograder/authoring/nbgrader_config.py")  # noqa: F821
