"""nbgrader's exchange for the students' servers on the course JupyterHub.

``jupyterhub_config.py`` puts this folder on the servers' ``JUPYTER_CONFIG_PATH``,
where nbgrader's Assignments tab reads it: the course id and the exchange folder
(both from ``autograder/authoring/nbgrader_config.py``, which the instructor's
commands read too).

nbgrader names a student by their unix user. A hub that runs every user's
server as one unix user (``localhost_config.py``) sets ``TRAINLAB_STUDENT_ID``
to the hub's user name instead.
"""

import os

from autograder.authoring.nbgrader_config import configure_exchange

c = get_config()  # noqa: F821

configure_exchange(c)
if os.environ.get("TRAINLAB_STUDENT_ID"):
    c.CourseDirectory.student_id = os.environ["TRAINLAB_STUDENT_ID"]
