"""Echo latency: 10,000 round trips of 64 bytes on one connection, p50 and p99.

See ``python benchmarks/latency.py --help``; the code is ``rudp/bench/latency.py``.
"""

import sys

import common  # noqa: F401  (puts the checkout on sys.path)

from rudp.bench import latency

if __name__ == "__main__":
    sys.exit(latency.main())
