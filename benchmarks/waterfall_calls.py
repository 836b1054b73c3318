"""CPU time of the pipeline-movement calls on a data set: ``pipeline_waterfall`` over a quarter
(every open deal, and the deals expected to close in the quarter), ``waterfall_fields`` (the same two
as ``funnelkit metrics`` computes them: totals only) and ``stage_movement``; the measurement behind docs/performance.md's waterfall figures.

    .venv/bin/python benchmarks/waterfall_calls.py data/sample --quarter 2026Q2
"""

from __future__ import annotations

import argparse
import time
import warnings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--quarter", default="2026Q2")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import funnelkit as fk
    from funnelkit.engine.tables import tables_of
    from funnelkit.metrics import pipeline_waterfall, stage_movement, waterfall_fields

    ds = fk.load(args.folder)
    p = fk.Period.quarter(args.quarter)
    tables_of(ds)                       # the upload is not what is measured
    calls = {"pipeline_waterfall (all)": lambda: pipeline_waterfall(ds, p.start, p.as_of),
             "pipeline_waterfall (period)": lambda: pipeline_waterfall(ds, p.start, p.as_of, window=p),
             "waterfall_fields (all)": lambda: waterfall_fields(ds, p.start, p.as_of, label="all"),
             "waterfall_fields (period)": lambda: waterfall_fields(ds, p.start, p.as_of, window=p, label="period"),
             "stage_movement": lambda: stage_movement(ds, p.start, p.as_of)}
    for round_ in range(1, args.rounds + 1):
        for name, call in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            w = call()
            n = len(w.deals) if hasattr(w, "deals") else sum(m["deals"] for m in w["movements"].values()) \
                if isinstance(w, dict) else len(w)
            print(f"round {round_}: {name}: wall {time.perf_counter() - t0:.2f} s, "
                  f"CPU {time.process_time() - c0:.2f} s ({n} rows)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
