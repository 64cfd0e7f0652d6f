"""Every measure in one invocation; writes results/latest.json and results/latest.md.

See ``python benchmarks/run_all.py --help``; the code is ``rudp/bench/suite.py``
(also ``rudp bench``).
"""

import sys

import common

from rudp.bench import suite

if __name__ == "__main__":
    sys.exit(suite.main(default_out_dir=common.RESULTS))
