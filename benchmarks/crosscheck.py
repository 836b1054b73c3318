"""Cross-check funnelkit's metrics against the DuckDB implementation on any data folders.

``benchmarks/run.py`` compares the two engines on generated sample data at the default ``as_of``
only. This script runs the same comparison (``run.fk_results`` / ``run.compare``) on any folders in
the data contract (e.g. imported real exports), for every quarter each folder touches (or the ones
given), optionally with ``as_of`` instants inside the quarter as well.

    .venv/bin/python benchmarks/crosscheck.py /tmp/xc/maven /tmp/xc/olist
    .venv/bin/python benchmarks/crosscheck.py data/sample --quarters 2025Q3,2026Q1 \\
        --as-of-fractions 0.3,0.77 --as-of-time 13:45

Prints one line per (folder, quarter, as_of) and every difference; the exit status is 1 when any
differ. Not part of the test suite (DuckDB is the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

import duckdb_metrics as dm  # noqa: E402
import funnelkit as fk  # noqa: E402
from funnelkit.metrics.summary import metrics_summary  # noqa: E402
from funnelkit.period import Period, quarters_between  # noqa: E402
from run import compare, fk_results  # noqa: E402


def data_quarters(ds) -> list[str]:
    """Every quarter touched by a creation, a stage entry or a close of the data set."""
    times = [ds.deals["created_at"], ds.deals["closed_at"], ds.stage_history["entered_at"]]
    first = min(t.min() for t in times)
    last = max(t.max() for t in times)
    return quarters_between(first, last)


def as_of_instants(period: Period, fractions: list[float], clock: str | None) -> list[pd.Timestamp | None]:
    """The default as_of (None) plus instants at the given fractions of the quarter's days."""
    out: list[pd.Timestamp | None] = [None]
    for f in fractions:
        day = period.start + pd.Timedelta(days=int(f * period.days))
        t = day + (pd.Timedelta(clock + ":00" if clock.count(":") == 1 else clock) if clock else
                   pd.Timedelta(0))
        out.append(t)
    return out


def check_folder(folder: Path, quarters: list[str] | None, fractions: list[float],
                 clock: str | None, verbose: bool) -> int:
    ds = fk.load(folder)
    stages = yaml.safe_load((folder / "pipeline.yml").read_text(encoding="utf-8"))["stages"]
    con = dm.connect()
    dm.load(con, folder, stages)
    qs = quarters or data_quarters(ds)
    bad = 0
    for q in qs:
        base = Period.quarter(q)
        for as_of in as_of_instants(base, fractions, clock):
            period = Period.quarter(q, as_of)
            s = metrics_summary(ds, period)
            got = fk_results(s)
            want = dm.metrics(con, period.start.to_pydatetime(), period.stop.to_pydatetime(),
                              period.as_of.to_pydatetime(), with_bottleneck=True,
                              with_survival=True)
            diffs = compare(got, want)
            tag = f"{folder.name} {q} as_of {period.as_of}"
            print(f"{tag}: {'same' if not diffs else f'{len(diffs)} MISMATCH'}"
                  f" (cohort {s.get('cohort', {}).get('deals')}, closed "
                  f"{(s['days_to_close']['won']['deals'] or 0) + (s['days_to_close']['lost']['deals'] or 0)})")
            for d in diffs if verbose else diffs[:20]:
                print(f"   {d}")
            bad += bool(diffs)
    con.close()
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--quarters", help="comma-separated quarters (default: every quarter of the data)")
    ap.add_argument("--as-of-fractions", default="",
                    help="also check as_of at these fractions of each quarter's days, e.g. 0.3,0.77")
    ap.add_argument("--as-of-time", default=None, help="clock time of those as_of instants, e.g. 13:45")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every difference")
    args = ap.parse_args(argv)
    quarters = args.quarters.split(",") if args.quarters else None
    fractions = [float(x) for x in args.as_of_fractions.split(",") if x.strip()]
    bad = sum(check_folder(f, quarters, fractions, args.as_of_time, args.verbose) for f in args.folders)
    print(f"\n{bad} (quarter, as_of) combinations differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
