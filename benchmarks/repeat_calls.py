"""CPU time of nine closing and size calls on a data set, twice (the second time from the engine's
kept results): the measurement behind docs/performance.md's "nine calls".

    .venv/bin/python benchmarks/repeat_calls.py data/sample --quarter 2026Q2
"""

from __future__ import annotations

import argparse
import time
import warnings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--quarter", default="2026Q2")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import funnelkit as fk
    from funnelkit.engine.tables import tables_of
    from funnelkit.metrics import closing, size

    ds = fk.load(args.folder)
    p = fk.Period.quarter(args.quarter)
    tables_of(ds)                       # the upload is not what is measured
    calls = [lambda: closing.closed_in_period(ds, p), lambda: closing.days_to_close(ds, p),
             lambda: closing.days_to_close(ds, p, by="size_band"), lambda: closing.close_time_survival(ds, p),
             lambda: size.win_rate(ds, p), lambda: size.deal_size(ds, p), lambda: size.deal_size_by_month(ds, p),
             lambda: size.outlier_deals(ds, p), lambda: size.sales_velocity(ds, p)]
    for round_ in (1, 2):
        c0, t0 = time.process_time(), time.perf_counter()
        for call in calls:
            call()
        print(f"round {round_}: nine calls, wall {time.perf_counter() - t0:.2f} s, "
              f"CPU {time.process_time() - c0:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
