"""The first code cell of every notebook (``SETUP_CELL``: on Colab it installs the course's
helpers from ``config.REPO_URL`` with ``--no-deps``, so Colab's TensorFlow is never replaced)
and the badges of its header; tests check every notebook against both."""

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


def badges(notebook: str) -> str:
    """The Markdown badge row of ``notebooks/<notebook>``'s header (Colab and Binder)."""
    colab = f"https://colab.research.google.com/github/{_GITHUB}/blob/main/notebooks/{notebook}"
    path = quote(f"notebooks/{notebook}", safe="")
    binder = f"https://mybinder.org/v2/gh/{_GITHUB}/main?labpath={path}"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})"
    )
