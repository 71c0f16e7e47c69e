"""nbgrader settings for the student lab (``python -m autograder.authoring.lab``).

``autograder/authoring/lab.py`` puts this folder first on
``JUPYTER_CONFIG_PATH``, where the Validate button's handler looks for its
configuration.
"""

c = get_config()  # noqa: F821

# report every code cell that fails, not only the graded ones: the visible
# checks live in their own locked cells, so that a failed visible check cannot
# cost the hidden tests their partial credit
c.Validator.validate_all = True
# some cells train small networks: give them time
c.Execute.timeout = 300
