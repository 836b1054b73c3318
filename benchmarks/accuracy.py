"""Benchmark: the landing forecast's accuracy record (issue: 8 quarters x 13 weeks on 100k deals in
under a minute). Not part of the test suite.

    .venv/bin/python benchmarks/accuracy.py --deals 100k --quarters 8

Generates (once, cached like run.py) the sample data set of the given size, then times
``forecast_accuracy`` over the last ``--quarters`` default quarters (every week of each), and prints
the time per forecast, the whole record's time and the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ensure_data, parse_size  # noqa: E402

import funnelkit as fk  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deals", default="100k")
    ap.add_argument("--quarters", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--simulations", type=int, default=1000)
    args = ap.parse_args(argv)
    folder, _ = ensure_data(parse_size(args.deals), args.seed)
    t0 = time.perf_counter()
    ds = fk.load(folder)
    load_s = time.perf_counter() - t0
    periods = fk.metrics.default_accuracy_periods(ds)[-args.quarters:]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = fk.metrics.forecast_accuracy(ds, periods, simulations=args.simulations)
    secs = time.perf_counter() - t0
    n = len(acc.forecasts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.deals} deals ({len(ds.stage_history):,} stage entries), load {load_s:.1f} s")
    print(f"accuracy record: {len(periods)} quarters ({periods[0].label}..{periods[-1].label}), "
          f"{n} forecasts in {secs:.1f} s ({secs / max(n, 1) * 1000:.0f} ms each), peak {peak:,.0f} MB")
    print(acc.summary.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
