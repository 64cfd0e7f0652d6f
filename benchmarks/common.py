"""Shared by the scripts in this folder: make the checkout's ``rudp`` importable.

The benchmark code itself is the package ``rudp.bench`` (process spawning,
statistics, JSON and Markdown in ``rudp/bench/common.py``, ``procs.py`` and
``runner.py``), so that ``rudp bench`` runs the same suite from an installed
package.  These scripts are its entry points for a source checkout: run them
with any Python that has rudp's dependencies, installed or not.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# The workers come from a multiprocessing forkserver, a fresh interpreter that
# does not inherit sys.path: it must import this checkout's rudp too, not an
# installed (or editable, other) one.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)
