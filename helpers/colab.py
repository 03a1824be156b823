"""The first code cell of every notebook, and the badges of its header.

A notebook opened on Colab has TensorFlow and Keras but not this course's
``helpers``: its first cell installs them from ``config.REPO_URL`` with
``--no-deps``, only when they are missing, so Colab's TensorFlow is never
replaced. Elsewhere (local, Binder) the cell does nothing. The text of that
cell lives here, once; a test checks that every notebook starts with it.
"""

from __future__ import annotations

from urllib.parse import quote

from helpers.config import REPO_URL

_GITHUB = REPO_URL.removeprefix("https://github.com/")

SETUP_CELL = f"""# On Colab, install the course helpers once (Colab's TensorFlow is left untouched).
import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("helpers") is None:
    package = "git+{REPO_URL}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", package], check=True)

# Start Keras and its backend; their routine start-up log is filtered out, real errors show.
from helpers import config

config.start_backend()
"""


def colab_url(notebook: str) -> str:
    """The "Open in Colab" address of ``notebooks/<notebook>`` on the main branch."""
    return f"https://colab.research.google.com/github/{_GITHUB}/blob/main/notebooks/{notebook}"


def binder_url(notebook: str) -> str:
    """The Binder address that opens ``notebooks/<notebook>`` in JupyterLab."""
    path = quote(f"notebooks/{notebook}", safe="")
    return f"https://mybinder.org/v2/gh/{_GITHUB}/main?labpath={path}"


def badges(notebook: str) -> str:
    """The Markdown badge row of a notebook's header (Colab and Binder)."""
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(notebook)}) "
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder_url(notebook)})"
    )
