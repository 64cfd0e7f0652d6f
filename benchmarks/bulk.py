"""Bulk transfer: 64 MiB one way, MB/s and CPU seconds per side, at three datagram sizes.

See ``python benchmarks/bulk.py --help``; the code is ``rudp/bench/bulk.py``.
"""

import sys

import common  # noqa: F401  (puts the checkout on sys.path)

from rudp.bench import bulk

if __name__ == "__main__":
    sys.exit(bulk.main())
