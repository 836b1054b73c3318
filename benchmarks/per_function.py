"""Wall and CPU seconds of one call of each engine-side metric function on a data set, with the engine's
kept results cleared before every call (so each call runs its queries), and the process's peak memory.

Each function runs ``--repeat`` times (default 3); the first call of the first function also pays for
what a data set computes once (its tables, their visits). Printed: the first call and the median of
the others, per function.

    .venv/bin/python benchmarks/per_function.py benchmarks/data/sample_100k_seed7 --quarter 2026Q2
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings


def _calls(ds, p):
    from funnelkit import history
    from funnelkit.metrics import breakdown, closing, forecast, size, stage_time, stages

    at = p.start + (p.as_of - p.start) / 2
    return {
        "snapshot": lambda: stages.snapshot(ds, at),
        "weekly_snapshots": lambda: stages.weekly_snapshots(ds, p),
        "funnel": lambda: stages.funnel(ds, p),
        "stage_flow": lambda: stages.stage_flow(ds, p),
        "time_in_stage": lambda: stage_time.time_in_stage(ds, p),
        "stuck_deals": lambda: stage_time.stuck_deals(ds, p.as_of),
        "amount_by": lambda: breakdown.amount_by(ds, p, by="source"),
        "closed_in_period": lambda: closing.closed_in_period(ds, p),
        "days_to_close": lambda: closing.days_to_close(ds, p),
        "deal_size": lambda: size.deal_size(ds, p),
        "sales_velocity": lambda: size.sales_velocity(ds, p),
        "stage_at": lambda: history.stage_at(ds, at),
        "win_forecast": lambda: forecast.win_forecast(ds, p.as_of),
        "backtest_forecast": lambda: forecast.backtest_forecast(ds),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--quarter", default="2026Q2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", help="comma-separated function names")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import funnelkit as fk
    from funnelkit.engine.tables import tables_of

    ds = fk.load(args.folder)
    p = fk.Period.quarter(args.quarter)
    t = tables_of(ds)                   # the upload is not what is measured
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    calls = _calls(ds, p)
    if args.only:
        calls = {k: calls[k] for k in args.only.split(",")}
    print(f"{args.folder} {args.quarter}: peak RSS after load+upload {rss0:.0f} MB")
    print(f"{'function':<20}{'first wall':>11}{'first CPU':>11}{'then wall':>11}{'then CPU':>10}")
    for name, call in calls.items():
        times = []
        for _ in range(args.repeat):
            t._results.clear()
            for kept in ("deals_as_of", "visits_as_of"):          # history's per-instant frames
                ds.__dict__.get("_derived", {}).pop(kept, None)
            c0, w0 = time.process_time(), time.perf_counter()
            call()
            times.append((time.perf_counter() - w0, time.process_time() - c0))
        rest = times[1:] or times
        print(f"{name:<20}{times[0][0]:>11.3f}{times[0][1]:>11.3f}"
              f"{statistics.median(w for w, _ in rest):>11.3f}{statistics.median(c for _, c in rest):>10.3f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
