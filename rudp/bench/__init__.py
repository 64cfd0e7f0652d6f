"""The benchmark suite: rudp against kernel TCP, raw asyncio UDP and aioquic.

Every measure runs its client and its server in separate processes on
127.0.0.1, on the default asyncio loop and on uvloop, and runs every
implementation in the same invocation, interleaved run by run, so that the
ratios hold on a noisy machine even when the absolute figures drift.

- :mod:`rudp.bench.bulk`: 64 MiB one way through the streams API; MB/s and CPU.
- :mod:`rudp.bench.latency`: 10,000 echo round trips of 64 bytes; p50, p99.
- :mod:`rudp.bench.connrate`: 2,000 sequential connect + close; connections/s.
- :mod:`rudp.bench.scale`: 1,000 concurrent echo clients on one server socket;
  10,000 idle connections on one server (server memory per connection).
- :mod:`rudp.bench.lossy`: goodput through a UDP impairment relay at 0.1 %, 1 %
  and 5 % loss and through a 10 MB/s bottleneck, 20 ms each way; with
  ``--plot``, figures (:mod:`rudp.bench.plots`, matplotlib).
- :mod:`rudp.bench.suite`: all of them (``rudp bench``, ``benchmarks/run_all.py``).

The parent process only spawns and steers workers (:mod:`rudp.bench.procs`);
each worker (:mod:`rudp.bench.worker`) runs one side of one implementation on
one loop and answers JSON-line commands.  The code lives in the package rather
than in ``benchmarks/`` so that ``rudp bench`` works from an installed wheel;
the scripts in ``benchmarks/`` are thin entry points.
"""
