"""Lossy paths: goodput through a UDP impairment relay at 0.1 %, 1 %, 5 % loss and 10 MB/s.

See ``python benchmarks/lossy.py --help``; the code is ``rudp/bench/lossy.py``.
"""

import sys

import common  # noqa: F401  (puts the checkout on sys.path)

from rudp.bench import lossy

if __name__ == "__main__":
    sys.exit(lossy.main())
