"""Scale: 1,000 concurrent echo clients on one server socket; 10,000 idle connections.

See ``python benchmarks/scale.py --help``; the code is ``rudp/bench/scale.py``.
"""

import sys

import common  # noqa: F401  (puts the checkout on sys.path)

from rudp.bench import scale

if __name__ == "__main__":
    sys.exit(scale.main())
