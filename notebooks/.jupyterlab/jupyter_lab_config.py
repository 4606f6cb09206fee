"""JupyterLab for this project's notebooks (`make notebooks`, tests/test_notebooks.py): on loopback, no
browser opened, rooted in notebooks/, and the jupytext percent scripts there open as notebooks on a double
click (overrides.json beside this file; jupytext's server extension reads and saves them)."""

from pathlib import Path

here = Path(__file__).resolve().parent
c = get_config()  # noqa: F821 (traitlets defines it for config files)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
# developers' machines and CI here run as root; loopback and the token keep the server to this user
c.ServerApp.allow_root = True
c.ExtensionApp.open_browser = False
c.ServerApp.root_dir = str(here.parent)
c.LabApp.app_settings_dir = str(here)
