"""Benchmark funnelkit against an independent DuckDB implementation of the metric definitions.

For each size (deals) it generates a sample data set once (cached under ``benchmarks/data/``), then
runs, each in its own subprocess (so peak memory is that engine's alone):

* funnelkit: ``funnelkit.load(folder)`` and ``metrics_summary(ds, Period.quarter(Q))``;
* DuckDB (``benchmarks/duckdb_metrics.py``): read the CSVs, normalise, derive visits, and the SQL
  metrics.

It prints time and peak memory per size, the funnelkit / DuckDB ratio, checks that both give the same
numbers (floats to a relative 1e-9) and fits how the cost grows with size.

    .venv/bin/python benchmarks/run.py                       # 10k, 100k, 1M deals
    .venv/bin/python benchmarks/run.py --sizes 10k,100k --repeat 3 --quarter 2026Q2

Not part of the test suite. Timings are wall-clock and noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

REL_TOL = 1e-9
ABS_TOL = 1e-6


def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = 1
    if t.endswith("k"):
        t, mult = t[:-1], 1_000
    elif t.endswith("m"):
        t, mult = t[:-1], 1_000_000
    return int(float(t) * mult)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# ------------------------------------------------------------------------------------------------
# Data

def ensure_data(n: int, seed: int) -> tuple[Path, float | None]:
    """The cached sample folder for ``n`` deals (generated once; returns generation seconds or None)."""
    folder = DATA / f"sample_{size_label(n)}_seed{seed}"
    done = folder / ".complete"
    if done.exists():
        return folder, None
    from funnelkit.sample import write_sample
    t0 = time.perf_counter()
    write_sample(folder, deals=n, seed=seed, force=True)   # a partial earlier run is replaced
    secs = time.perf_counter() - t0
    done.write_text(json.dumps({"deals": n, "seed": seed, "seconds": secs}))
    return folder, secs


# ------------------------------------------------------------------------------------------------
# Workers (run in a subprocess each)

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Timers:
    """Wrap the metric functions the summary calls, to time each top-level call (inclusive)."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self.depth = 0

    def wrap(self, module, name):
        fn = getattr(module, name)
        key = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

        def timed(*a, **k):
            self.depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t0
        setattr(module, name, timed)


def _instrument() -> _Timers:
    import importlib
    timers = _Timers()
    for mod in ("stages", "history", "stage_time", "closing", "size", "breakdown", "forecast", "landing"):
        try:
            m = importlib.import_module(f"funnelkit.metrics.{mod}")
        except ImportError:
            continue
        for name in list(getattr(m, "__all__", [])):
            if callable(getattr(m, name, None)) and not isinstance(getattr(m, name), type):
                timers.wrap(m, name)
    return timers


def fk_results(s: dict) -> dict:
    """The compared numbers from a metrics_summary dict, in the DuckDB module's shape."""
    out = {
        "snapshot": [{k: r[k] for k in ("stage", "open_deals", "open_amount")} for r in s["deals_per_stage"]],
        "funnel": [{k: r[k] for k in ("stage", "reached", "conversion")} for r in s["deals_per_stage"]],
        "time_in_stage": s["time_in_stage"],
        "days_to_close": s["days_to_close"],
        "deal_size": {k: s["deal_size"].get(k) for k in ("deals", "mean", "median", "trimmed_mean")},
        "win_rate": s["win_rate"],
    }
    for key in ("cohort", "stage_flow", "bottleneck", "close_time_survival"):
        if key in s:
            out[key] = s[key]
    for by in ("source", "product", "owner"):
        rows = s.get(f"amount_by_{by}")
        if rows is not None:
            out[f"amount_by_{by}"] = [{("key" if k == by else k): v for k, v in r.items()} for r in rows]
    return out


def worker_funnelkit(folder: Path, quarter: str, repeat: int) -> dict:
    base = _rss_mb()
    import ibis  # funnelkit's engine library, imported before the clock starts as DuckDB's worker imports duckdb

    import funnelkit as fk
    from funnelkit.metrics.summary import metrics_summary
    from funnelkit.period import Period
    ibis.duckdb  # noqa: B018  (the backend module loads on first use)
    timers = _instrument()
    after_import = _rss_mb()
    period = Period.quarter(quarter)
    loads, mets, breakdown, cpus = [], [], [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        ds = fk.load(folder)
        t1 = time.perf_counter()
        timers.times = {}
        summary = metrics_summary(ds, period)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c0)
        loads.append(t1 - t0)
        mets.append(t2 - t1)
        breakdown.append(dict(timers.times))
        rss_loaded = _rss_mb()
        del ds
    best = min(range(repeat), key=lambda i: loads[i] + mets[i])
    return {"engine": "funnelkit", "load_s": loads, "metrics_s": mets, "cpu_s": cpus,
            "breakdown_s": breakdown[best], "peak_mb": _peak_mb(), "base_mb": base,
            "import_mb": after_import, "rss_after_mb": rss_loaded,
            "deals": summary["dataset"]["deals"], "results": fk_results(summary)}


def worker_pyspark(folder: Path, quarter: str, repeat: int) -> dict:
    """funnelkit's metrics on PySpark local[2]: the folder loaded and checked by ``fk.load``, its
    tables handed to Spark (as a warehouse would hold them) and opened with ``fk.connect``, where the
    contract checks run again; then ``metrics_summary`` on the Spark-held data set. "load" is all of
    that before the metrics."""
    base = _rss_mb()
    import ibis
    from pyspark.sql import SparkSession

    import funnelkit as fk
    from funnelkit.engine.tables import database_frames
    from funnelkit.metrics.summary import metrics_summary
    from funnelkit.period import Period
    session = (SparkSession.builder.master("local[2]").appName("funnelkit-bench")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2").config("spark.driver.memory", "6g")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    con = ibis.pyspark.connect(session)
    after_import = _rss_mb()
    period = Period.quarter(quarter)
    loads, mets, cpus = [], [], []
    for i in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        loaded = fk.load(folder)
        deals, hist = database_frames(loaded)
        names = (f"bench_deals_{i}", f"bench_history_{i}")
        for frame, name in zip((deals, hist), names):
            session.createDataFrame(frame).cache().createOrReplaceTempView(name)
        ds = fk.connect(con, deals=names[0], stage_history=names[1], pipeline=folder / "pipeline.yml")
        del loaded, deals, hist
        t1 = time.perf_counter()
        summary = metrics_summary(ds, period)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c0)
        loads.append(t1 - t0)
        mets.append(t2 - t1)
    session.stop()
    return {"engine": "pyspark", "load_s": loads, "metrics_s": mets, "cpu_s": cpus, "breakdown_s": {},
            "peak_mb": _peak_mb() + _java_peak_mb(), "base_mb": base, "import_mb": after_import,
            "deals": summary["dataset"]["deals"], "results": fk_results(summary)}


def _java_peak_mb() -> float:
    """Peak RSS of this process's children (the Spark JVM), MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def worker_duckdb(folder: Path, quarter: str, repeat: int, threads: int | None) -> dict:
    base = _rss_mb()
    import duckdb
    import yaml

    import duckdb_metrics as dm
    from funnelkit.period import Period  # only for the quarter's dates
    after_import = _rss_mb()
    period = Period.quarter(quarter)
    stages = yaml.safe_load((folder / "pipeline.yml").read_text(encoding="utf-8"))["stages"]
    args = (period.start.to_pydatetime(), period.stop.to_pydatetime(), period.as_of.to_pydatetime())
    loads, mets, cpus = [], [], []
    for _ in range(repeat):
        con = dm.connect(threads)
        c0 = time.process_time()
        t0 = time.perf_counter()
        info = dm.load(con, folder, stages)
        t1 = time.perf_counter()
        res = dm.metrics(con, *args)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c0)
        loads.append(t1 - t0)
        mets.append(t2 - t1)
        nthreads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        con.close()
    return {"engine": "duckdb", "load_s": loads, "metrics_s": mets, "cpu_s": cpus, "peak_mb": _peak_mb(),
            "base_mb": base, "import_mb": after_import, "deals": info["deals"],
            "stage_entries": info["stage_entries"], "threads": nthreads,
            "version": duckdb.__version__, "results": res}


def run_worker(engine: str, folder: Path, args) -> dict:
    out = RESULTS / f".{engine}_{folder.name}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__)), "--worker", engine, "--data", str(folder),
           "--quarter", args.quarter, "--repeat", str(args.repeat), "--out", str(out)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"engine": engine, "error": (proc.stderr or proc.stdout).strip().splitlines()[-5:]}
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------------
# Comparison

def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(fk: dict, dk: dict) -> list[str]:
    """Every difference between the two result dicts, as readable lines (empty = same numbers)."""
    diffs: list[str] = []

    def rows_by(rows, key):
        return {str(r[key]): r for r in rows}

    for name, want in dk.items():
        if name not in fk:
            diffs.append(f"{name}: not in funnelkit's output (not compared)")
            continue
        got = fk[name]
        if isinstance(want, list):
            key = "stage" if want and "stage" in want[0] else "key"
            g, w = rows_by(got, key), rows_by(want, key)
            for k in sorted(set(g) | set(w)):
                if k not in g or k not in w:
                    diffs.append(f"{name}[{k}]: only in {'funnelkit' if k in g else 'duckdb'}: "
                                 f"{g.get(k) or w.get(k)}")
                    continue
                for col, wv in w[k].items():
                    if col == key:
                        continue
                    if col not in g[k]:
                        diffs.append(f"{name}[{k}].{col}: not in funnelkit's output")
                    elif not _close(g[k][col], wv):
                        diffs.append(f"{name}[{k}].{col}: funnelkit {g[k][col]!r} != duckdb {wv!r}")
            if name.startswith("amount_by_"):
                go = [str(r[key]) for r in got]
                wo = [str(r[key]) for r in want]
                # Only the won_amount order is defined: compare the won_amount sequence.
                gs = [r["won_amount"] for r in got]
                ws = [r["won_amount"] for r in want]
                if not all(_close(x, y) for x, y in zip(gs, ws)) and go != wo:
                    diffs.append(f"{name}: order differs: funnelkit {go} vs duckdb {wo}")
        elif isinstance(want, dict):
            for col, wv in want.items():
                if isinstance(wv, dict):
                    for c2, w2 in wv.items():
                        g2 = (got.get(col) or {}).get(c2)
                        if not _close(g2, w2):
                            diffs.append(f"{name}.{col}.{c2}: funnelkit {g2!r} != duckdb {w2!r}")
                elif not _close(got.get(col), wv):
                    diffs.append(f"{name}.{col}: funnelkit {got.get(col)!r} != duckdb {wv!r}")
        elif not _close(got, want):
            diffs.append(f"{name}: funnelkit {got!r} != duckdb {want!r}")
    return diffs


# ------------------------------------------------------------------------------------------------
# Report

def fit_exponent(ns: list[int], ts: list[float]) -> float | None:
    """Least-squares slope of log(time) on log(size): 1.0 = linear."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, ts) if t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for mod in ("pandas", "numpy", "pyarrow", "duckdb", "scipy"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "-"
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory": mem, "os": platform.platform(),
            "versions": versions}


def _best(r: dict) -> tuple[float, float]:
    i = min(range(len(r["load_s"])), key=lambda j: r["load_s"][j] + r["metrics_s"][j])
    return r["load_s"][i], r["metrics_s"][i]


def print_report(rows: list[dict], m: dict, quarter: str, repeat: int) -> str:
    lines = [f"funnelkit vs DuckDB, metrics for {quarter}; best of {repeat} run(s); "
             f"{m['cpu']}, {m['nproc']} cores, {m['memory']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    head = ("deals", "entries", "fk load s", "fk metrics s", "fk total s", "fk peak MB",
            "db load s", "db metrics s", "db total s", "db peak MB", "ratio total", "numbers")
    table = []
    for r in rows:
        fk, db = r["funnelkit"], r["duckdb"]
        cells = [size_label(r["deals"]), str(r.get("entries", "?"))]
        if "error" in fk:
            cells += ["error"] * 4
        else:
            fl, fm = _best(fk)
            cells += [f"{fl:.2f}", f"{fm:.2f}", f"{fl + fm:.2f}", f"{fk['peak_mb']:.0f}"]
        if "error" in db:
            cells += ["error"] * 4
        else:
            dl, dm_ = _best(db)
            cells += [f"{dl:.2f}", f"{dm_:.2f}", f"{dl + dm_:.2f}", f"{db['peak_mb']:.0f}"]
        if "error" in fk or "error" in db:
            cells += ["-", "-"]
        else:
            cells += [f"{(fl + fm) / (dl + dm_):.2f}x",
                      "same" if not r["diffs"] else f"{len(r['diffs'])} MISMATCH"]
        table.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in table)) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in table]

    ok = [r for r in rows if "error" not in r["funnelkit"] and "error" not in r["duckdb"]]
    if ok:
        lines += ["", "CPU seconds (all threads; less sensitive than wall time to other load on the "
                  "machine), load + metrics, best run:"]
        for r in ok:
            fc, dc = min(r["funnelkit"]["cpu_s"]), min(r["duckdb"]["cpu_s"])
            lines.append(f"  {size_label(r['deals']):>5}: funnelkit {fc:.2f}, duckdb {dc:.2f} "
                         f"({r['duckdb'].get('threads')} threads), ratio {fc / dc:.2f}x")
        lines += ["", "Growth (time per deal, microseconds; exponent b of time ~ deals^b, 1 = linear):"]
        ns = [r["deals"] for r in ok]
        series = {
            "funnelkit load": [_best(r["funnelkit"])[0] for r in ok],
            "funnelkit metrics": [_best(r["funnelkit"])[1] for r in ok],
            "funnelkit total": [sum(_best(r["funnelkit"])) for r in ok],
            "duckdb load": [_best(r["duckdb"])[0] for r in ok],
            "duckdb metrics": [_best(r["duckdb"])[1] for r in ok],
            "duckdb total": [sum(_best(r["duckdb"])) for r in ok],
            "funnelkit peak MB": [r["funnelkit"]["peak_mb"] for r in ok],
        }
        for name, ts in series.items():
            b = fit_exponent(ns, ts)
            per = ", ".join(f"{size_label(n)}: {1e6 * t / n:.2f}" for n, t in zip(ns, ts)) \
                if "MB" not in name else ", ".join(f"{size_label(n)}: {t:.0f} MB" for n, t in zip(ns, ts))
            lines.append(f"  {name:18s} {per}   b = {b:.2f}" if b is not None else f"  {name:18s} {per}")
        big = ok[-1]["funnelkit"]
        lines += ["", f"funnelkit metrics breakdown at {size_label(ok[-1]['deals'])} (s, inclusive, "
                  "top-level calls):"]
        for k, v in sorted(big["breakdown_s"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {k:36s} {v:7.2f}")
        fc = sum(v for k, v in big["breakdown_s"].items() if k.startswith("forecast.")) + \
            big["breakdown_s"].get("closing.close_time_survival", 0.0)
        fl, fm = _best(big)
        dl, dm_ = _best(ok[-1]["duckdb"])
        lines.append(f"  ratio without the forecast and Kaplan-Meier (which DuckDB does not compute): "
                     f"{(fl + fm - fc) / (dl + dm_):.2f}x")
    spark = [r for r in rows if "pyspark" in r]
    if spark:
        lines += ["", "funnelkit on PySpark local[2] (fk.load, tables handed to Spark, fk.connect, metrics_summary):"]
        for r in spark:
            p = r["pyspark"]
            if "error" in p:
                lines.append(f"  {size_label(r['deals']):>5}: error")
                continue
            pl, pm = _best(p)
            dl, dm_ = _best(r["duckdb"]) if "error" not in r["duckdb"] else (float("nan"),) * 2
            lines.append(f"  {size_label(r['deals']):>5}: load {pl:.2f} s, metrics {pm:.2f} s, total {pl + pm:.2f} s, "
                         f"peak {p['peak_mb']:.0f} MB (Python + JVM), {(pl + pm) / (dl + dm_):.2f}x DuckDB, "
                         + ("same numbers" if not r["pyspark_diffs"] else f"{len(r['pyspark_diffs'])} MISMATCH"))
            lines += [f"     {d}" for d in r["pyspark_diffs"][:20]]
    for r in rows:
        for engine in ("funnelkit", "duckdb", "pyspark"):
            if engine not in r or r[engine].get("error") == ["not run"]:
                continue
            if "error" in r[engine]:
                lines += ["", f"!! {engine} failed at {size_label(r['deals'])}:", *r[engine]["error"]]
        if r.get("diffs"):
            lines += ["", f"!! MISMATCH funnelkit vs DuckDB at {size_label(r['deals'])} "
                          f"({len(r['diffs'])} differences):"]
            lines += [f"   {d}" for d in r["diffs"][:60]]
            if len(r["diffs"]) > 60:
                lines.append(f"   ... and {len(r['diffs']) - 60} more (see the results JSON)")
    text = "\n".join(lines)
    print(text)
    return text


def time_report(quarter: str) -> str:
    """Wall time of `funnelkit report data/sample --quarter Q` (kernel start included)."""
    import tempfile
    sample = ROOT / "data" / "sample"
    if not sample.is_dir():
        return f"Report rendering: skipped ({sample} not found)"
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "funnelkit", "report", str(sample), "--quarter",
                               quarter, "--out", out, "--timeout", "300"],
                              cwd=ROOT, capture_output=True, text=True)
        secs = time.perf_counter() - t0
    if proc.returncode != 0:
        return f"Report rendering FAILED ({proc.returncode}): {proc.stderr.strip()[-500:]}"
    return (f"Report rendering of data/sample for {quarter} (funnelkit report, kernel start included): "
            f"{secs:.1f} s (target: under 30 s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10k,100k,1M", help="comma-separated deal counts (10k, 1M, 2500)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size and engine; the best is shown")
    ap.add_argument("--quarter", default="2026Q2", help="the quarter whose metrics are computed")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    ap.add_argument("--engines", default="funnelkit,duckdb")
    ap.add_argument("--no-report", action="store_true",
                    help="skip timing the HTML report of data/sample for the quarter")
    ap.add_argument("--worker", choices=["funnelkit", "duckdb", "pyspark"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        sys.path.insert(0, str(HERE))
        if args.worker == "funnelkit":
            res = worker_funnelkit(args.data, args.quarter, args.repeat)
        elif args.worker == "pyspark":
            res = worker_pyspark(args.data, args.quarter, args.repeat)
        else:
            res = worker_duckdb(args.data, args.quarter, args.repeat, args.threads)
        args.out.write_text(json.dumps(res, default=str))
        return 0

    engines = args.engines.split(",")
    rows = []
    for n in [parse_size(s) for s in args.sizes.split(",")]:
        folder, gen = ensure_data(n, args.seed)
        if gen is not None:
            print(f"generated {size_label(n)} deals in {gen:.1f} s -> {folder}", file=sys.stderr)
        row = {"deals": n, "folder": str(folder)}
        for engine in ("funnelkit", "duckdb"):
            row[engine] = run_worker(engine, folder, args) if engine in engines \
                else {"error": ["not run"]}
            print(f"  {size_label(n)} {engine}: "
                  + ("error" if "error" in row[engine] else
                     f"load {min(row[engine]['load_s']):.2f} s, metrics "
                     f"{min(row[engine]['metrics_s']):.2f} s, peak {row[engine]['peak_mb']:.0f} MB"),
                  file=sys.stderr)
        if "pyspark" in engines:      # funnelkit on PySpark local[2], for the record
            row["pyspark"] = run_worker("pyspark", folder, args)
            ok = "error" not in row["pyspark"] and "error" not in row["duckdb"]
            row["pyspark_diffs"] = compare(row["pyspark"]["results"], row["duckdb"]["results"]) if ok else []
        if "stage_entries" in row["duckdb"]:
            row["entries"] = row["duckdb"]["stage_entries"]
        row["diffs"] = (compare(row["funnelkit"]["results"], row["duckdb"]["results"])
                        if "error" not in row["funnelkit"] and "error" not in row["duckdb"] else [])
        rows.append(row)
    m = machine()
    text = print_report(rows, m, args.quarter, args.repeat)
    if not args.no_report:
        line = time_report(args.quarter)
        print(line)
        text += "\n\n" + line
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"bench_{stamp}.json").write_text(json.dumps(
        {"machine": m, "quarter": args.quarter, "repeat": args.repeat, "rows": rows}, default=str, indent=1))
    (RESULTS / f"bench_{stamp}.txt").write_text(text + "\n")
    return 1 if any(r["diffs"] or r.get("pyspark_diffs") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
