"""The course's JupyterHub: every student's server is JupyterLab with nbgrader.

The recipe (README, "A course JupyterHub"): JupyterHub from PyPI (pinned in
requirements.txt) runs as root on the course machine, with the course
environment installed; its proxy, ``configurable-http-proxy``, comes from npm
(``package.json`` here; ``make setup`` installs it into ``node_modules/``).
Each student logs in with their unix account (PAM) and gets their own server,
run as that user by the local process spawner: JupyterLab with nbgrader's
labextension (the Assignments tab, the Validate button) and the course's
kernel. nbgrader's exchange tells the students apart by their unix names.

A deployment keeps its own settings (authenticator, users, address, TLS) in a
small config of its own that loads this one first::

    # /srv/jupyterhub/jupyterhub_config.py
    load_subconfig("/opt/course/deploy/jupyterhub/jupyterhub_config.py")
    c.Authenticator.allowed_users = {"alice", "bob"}
    c.Authenticator.admin_users = {"instructor"}

and starts it from its state folder (the hub's database, cookie secret)::

    cd /srv/jupyterhub && jupyterhub -f jupyterhub_config.py

``localhost_config.py`` is the same hub on this machine alone, for a try-out
and for the test (tests/deploy/test_hub_round_trip.py).
"""

import sys
from pathlib import Path

from autograder.authoring.lab import lab_env
from autograder.authoring.nbgrader_config import exchange_root

c = get_config()  # noqa: F821

HERE = Path(__file__).resolve().parent
#: the proxy that ``make setup`` installs (``npm ci`` here); else one on PATH
PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"

c.JupyterHub.bind_url = "http://:8000"
c.ConfigurableHTTPProxy.command = [
    str(PROXY) if PROXY.exists() else "configurable-http-proxy"
]

# one server per student, run as the student's unix user
c.JupyterHub.spawner_class = "localprocess"
# the course environment's single-user server (the hub runs in it too)
c.Spawner.cmd = [str(Path(sys.executable).with_name("jupyterhub-singleuser"))]
c.Spawner.default_url = "/lab"
# the students' servers read this folder's settings: nbgrader's exchange and
# course id (nbgrader_config.py); no instructor tools (formgrader, course list,
# create assignment: labconfig/page_config.json, jupyter_server_config.d/); and
# the course lab's Validate button settings
_lab = lab_env({"JUPYTER_CONFIG_PATH": str(HERE)})
c.Spawner.environment = {
    "JUPYTER_CONFIG_PATH": _lab["JUPYTER_CONFIG_PATH"],
    "PYTHONPATH": _lab["PYTHONPATH"],
    "TRAINLAB_EXCHANGE": str(exchange_root()),  # the hub's (its $TRAINLAB_EXCHANGE)
}
# the course's notebooks train small networks: give a server time to start
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
