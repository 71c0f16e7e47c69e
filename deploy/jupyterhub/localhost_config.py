"""The course's JupyterHub on this machine alone: a try-out, and the test's hub.

``jupyterhub_config.py`` with a shared password instead of unix accounts and
every user's server run as the hub's own unix user (JupyterHub's shared-password
authenticator, the dummy authenticator's successor, and its simple local process
spawner: no isolation between users, so never on a network). nbgrader then
names each student by their hub name.

Environment (all optional but the password):

- ``TRAINLAB_HUB_PASSWORD``: the password of every user (required; at least
  8 characters);
- ``TRAINLAB_HUB_USERS``: who may log in, comma-separated (default
  ``student,instructor``);
- ``TRAINLAB_HUB_PORT``: the hub's address http://127.0.0.1:PORT (default 8000);
  ``TRAINLAB_HUB_API_PORT`` (8081) and ``TRAINLAB_PROXY_API_PORT`` (8001): its
  internal ports;
- ``TRAINLAB_HUB_HOMES``: the folder of the users' homes (default
  ``/tmp/trainlab-hub``);
- ``TRAINLAB_EXCHANGE``: nbgrader's exchange (default /srv/nbgrader/exchange).

Run it from a state folder::

    mkdir -p /tmp/hub && cd /tmp/hub
    TRAINLAB_HUB_PASSWORD=... TRAINLAB_EXCHANGE=/tmp/hub/exchange \\
        jupyterhub -f <course>/deploy/jupyterhub/localhost_config.py
"""

import os
from pathlib import Path

load_subconfig(str(Path(__file__).resolve().with_name("jupyterhub_config.py")))  # noqa: F821
c = get_config()  # noqa: F821

password = os.environ.get("TRAINLAB_HUB_PASSWORD", "")
if not password:
    raise SystemExit(
        "localhost_config.py: set TRAINLAB_HUB_PASSWORD to the password the "
        "users log in with (found none)"
    )
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = password
users = os.environ.get("TRAINLAB_HUB_USERS", "student,instructor")
c.Authenticator.allowed_users = {u.strip() for u in users.split(",") if u.strip()}

host = "127.0.0.1"
c.JupyterHub.bind_url = f"http://{host}:{os.environ.get('TRAINLAB_HUB_PORT', '8000')}"
c.JupyterHub.hub_bind_url = (
    f"http://{host}:{os.environ.get('TRAINLAB_HUB_API_PORT', '8081')}"
)
c.ConfigurableHTTPProxy.api_url = (
    f"http://{host}:{os.environ.get('TRAINLAB_PROXY_API_PORT', '8001')}"
)

c.JupyterHub.spawner_class = "simple"
homes = os.environ.get("TRAINLAB_HUB_HOMES", "/tmp/trainlab-hub")
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(homes, "{username}")
c.Spawner.ip = host
# every server runs as this unix user: nbgrader names the student by hub name
c.Spawner.environment["TRAINLAB_STUDENT_ID"] = lambda spawner: spawner.user.name
if os.geteuid() == 0:  # a container's root: jupyter refuses root unless told
    c.Spawner.args = ["--ServerApp.allow_root=True"]
