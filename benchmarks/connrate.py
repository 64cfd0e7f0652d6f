"""Connection rate: 2,000 sequential connect + close, connections per second.

See ``python benchmarks/connrate.py --help``; the code is ``rudp/bench/connrate.py``.
"""

import sys

import common  # noqa: F401  (puts the checkout on sys.path)

from rudp.bench import connrate

if __name__ == "__main__":
    sys.exit(connrate.main())
