"""An independent DuckDB SQL implementation of the metric definitions (docs/metrics.md, issue #3).

Benchmark-only (DuckDB is the ``bench`` extra). It shares no code with funnelkit: it reads the CSV
files itself, normalises the stage history the way the loader documents it, derives the visits and
computes the metrics in SQL. ``benchmarks/run.py`` times it against funnelkit and checks that both
give the same numbers.

Unknown is never 0: a sum over deals whose amounts are all unknown is null (docs/metrics.md).
With a change log (``deal_changes.csv``), amounts are those known at ``as_of``.
Deals flagged ``dates_estimated`` count, but are left out of every duration.

Covered: snapshot per stage at ``as_of`` (open deals and amount), funnel (reached, conversion) and the
cohort's outcomes, stage flow, time in stage (visits ended in P: count, mean, median, p90; stuck
deals at ``as_of``), days to close (won / lost), deal size (count, mean, median, 10% trimmed mean),
win rate, amount by source / product / owner. Not covered: the win forecast, the Kaplan-Meier close
time estimate and the weekly-snapshot bottleneck (their numbers are not compared).

Assumptions (stated so that a mismatch can be traced): the input is valid (as the sample generator
writes it: no rows the strict loader would reject); timestamps are ISO 8601 (a zone offset, if any,
is converted to UTC and dropped); amounts are plain numbers or empty.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

NOT_SET = "(not set)"
OUTCOMES = ("advanced", "skipped ahead", "moved back", "won", "lost", "still there")


def _ts(col: str) -> str:
    """SQL for an ISO 8601 text column -> naive TIMESTAMP (UTC where the value carries an offset)."""
    c = f"nullif(trim({col}), '')"
    return (f"CASE WHEN regexp_matches({c}, '(Z|[+-]\\d{{2}}(:?\\d{{2}})?)$') "
            f"THEN timezone('UTC', CAST({c} AS TIMESTAMPTZ)) ELSE CAST({c} AS TIMESTAMP) END")


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def load(con: duckdb.DuckDBPyConnection, folder: str | Path, stages: list[str]) -> dict:
    """Create tables ``deals``, ``hist`` (normalised stage history) and ``visits``."""
    folder = Path(folder)
    con.execute("CREATE OR REPLACE TABLE stages AS SELECT unnest(?::VARCHAR[]) AS stage, "
                "unnest(range(?)) AS stage_index", [stages, len(stages)])
    deals_csv = str(folder / "deals.csv")
    hist_csv = str(folder / "stage_history.csv")
    # Every cell as text (as the contract says), then typed here: no type sniffing differences.
    # dates_estimated (optional): a flagged deal closed before its recorded creation is taken as
    # created at its close, and its durations are left out (docs/data-contract.md).
    with open(deals_csv, encoding="utf-8-sig") as fh:
        flagged = "dates_estimated" in [c.strip() for c in fh.readline().split(",")]
    flag = "coalesce(lower(trim(dates_estimated)) = 'true', false)" if flagged else "false"
    con.execute(f"""
        CREATE OR REPLACE TABLE deals AS
        SELECT trim(deal_id) AS deal_id,
               CASE WHEN {flag} AND {_ts('closed_at')} < {_ts('created_at')} THEN {_ts('closed_at')}
                    ELSE {_ts('created_at')} END AS created_at,
               {flag} AS dates_estimated,
               {_ts('closed_at')} AS closed_at,
               lower(trim(status)) AS status,
               CAST(nullif(trim(amount), '') AS DOUBLE) AS amount,
               coalesce(nullif(trim(source), ''), '{NOT_SET}') AS source,
               coalesce(nullif(trim(product), ''), '{NOT_SET}') AS product,
               coalesce(nullif(trim(owner), ''), '{NOT_SET}') AS owner
        FROM read_csv(?, header = true, all_varchar = true)
    """, [deals_csv])
    # Normalise: first-stage entry at created_at where a deal has none at or before it; order by
    # (entered_at, stage order); merge consecutive repeats of a stage (the first entry is kept).
    con.execute(f"""
        CREATE OR REPLACE TABLE hist AS
        WITH h AS (
            SELECT trim(r.deal_id) AS deal_id, s.stage_index, {_ts('r.entered_at')} AS entered_at
            FROM read_csv(?, header = true, all_varchar = true) r
            JOIN stages s ON s.stage = trim(r.stage)
        ),
        firsts AS (SELECT deal_id, min(entered_at) AS first_at FROM h GROUP BY deal_id),
        added AS (
            SELECT d.deal_id, 0 AS stage_index, d.created_at AS entered_at
            FROM deals d LEFT JOIN firsts f USING (deal_id)
            WHERE f.first_at IS NULL OR f.first_at > d.created_at
        ),
        allh AS (SELECT * FROM h UNION ALL SELECT * FROM added),
        ordered AS (
            SELECT *, lag(stage_index) OVER (PARTITION BY deal_id ORDER BY entered_at, stage_index)
                      AS prev_index
            FROM allh
        )
        SELECT deal_id, stage_index, entered_at FROM ordered
        WHERE prev_index IS NULL OR prev_index <> stage_index
    """, [hist_csv])
    # One row per visit: to the next entry, or (last entry) to closed_at.
    con.execute("""
        CREATE OR REPLACE TABLE visits AS
        SELECT h.deal_id, h.stage_index, h.entered_at,
               lead(h.entered_at) OVER w AS next_entered_at,
               lead(h.stage_index) OVER w AS next_stage_index,
               d.created_at, d.closed_at, d.status, d.amount, d.owner, d.dates_estimated
        FROM hist h JOIN deals d USING (deal_id)
        WINDOW w AS (PARTITION BY h.deal_id ORDER BY h.entered_at, h.stage_index)
    """)
    # The change log's amount changes (optional deal_changes.csv): value empty = unknown from then on.
    changes_csv = folder / "deal_changes.csv"
    if changes_csv.is_file():
        con.execute(f"""
            CREATE OR REPLACE TABLE amount_changes AS
            SELECT trim(deal_id) AS deal_id, {_ts('changed_at')} AS changed_at,
                   CAST(nullif(replace(trim(value), ',', ''), '') AS DOUBLE) AS amount
            FROM read_csv(?, header = true, all_varchar = true) WHERE trim(field) = 'amount'
        """, [str(changes_csv)])
    else:
        con.execute("CREATE OR REPLACE TABLE amount_changes (deal_id VARCHAR, changed_at TIMESTAMP, "
                    "amount DOUBLE)")
    return {"deals": con.execute("SELECT count(*) FROM deals").fetchone()[0],
            "stage_entries": con.execute("SELECT count(*) FROM hist").fetchone()[0]}


def _rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def week_end_instants(start, stop, as_of) -> list:
    """Monday 00:00 instants whose Sunday lies in ``start <= t < stop``, not after ``as_of``, plus
    ``as_of`` (once), sorted: the instants of the weekly snapshot series (docs/metrics.md, 1)."""
    import datetime as _dt
    day = _dt.timedelta(days=1)
    first = start + _dt.timedelta(days=(6 - start.weekday()) % 7)  # the first Sunday in P
    out = []
    sunday = first
    while sunday < stop:
        monday = sunday + day
        if monday <= as_of:
            out.append(monday)
        sunday += 7 * day
    return sorted(set(out) | {as_of})


def bottleneck(con: duckdb.DuckDBPyConnection, start, stop, as_of, funnel: list[dict]) -> dict:
    """The bottleneck of docs/metrics.md section 1 from the weekly snapshot counts (SQL) and the funnel.

    Needs the ``visits`` table of :func:`load`; ``funnel`` is ``metrics(...)["funnel"]``.
    """
    lowest = [(r["conversion"], i, r["stage"]) for i, r in enumerate(funnel) if r["conversion"] is not None]
    low = min(lowest) if lowest else None
    instants = week_end_instants(start, stop, as_of)
    con.execute("CREATE OR REPLACE TEMP TABLE instants AS SELECT unnest(?::TIMESTAMP[]) AS t_at", [instants])
    # Open deals per stage at each instant T: created before T, not closed before T, and whose latest
    # entry before T is the stage (the visit began before T and its next entry, if any, is not before T).
    drops = con.execute("""
        WITH counts AS (
            SELECT i.t_at, s.stage_index, s.stage,
                   (SELECT count(*) FROM visits x
                    WHERE x.stage_index = s.stage_index AND x.entered_at < i.t_at AND x.created_at < i.t_at
                      AND (x.next_entered_at IS NULL OR x.next_entered_at >= i.t_at)
                      AND (x.closed_at IS NULL OR x.closed_at >= i.t_at)) AS n
            FROM instants i CROSS JOIN stages s
        ),
        d AS (
            SELECT t_at, stage_index, stage,
                   lag(n) OVER (PARTITION BY stage_index ORDER BY t_at) - n AS drop
            FROM counts
        )
        SELECT stage, drop, t_at FROM d WHERE drop > 0
        ORDER BY drop DESC, t_at, stage_index LIMIT 1
    """).fetchall()
    top = drops[0] if drops else (None, None, None)
    return {"lowest_conversion_stage": low[2] if low else None,
            "lowest_conversion": low[0] if low else None,
            "largest_drop_stage": top[0], "largest_drop": top[1],
            "largest_drop_week": top[2].isoformat() if top[2] is not None else None}


def close_time_survival(con: duckdb.DuckDBPyConnection, start, stop, as_of,
                        horizons=(30, 60, 90)) -> dict:
    """Kaplan-Meier of days to any close (docs/metrics.md section 3), without lifelines.

    Cohort: deals created in P and before ``as_of``; a close before ``as_of`` is an event at
    ``closed_at - created_at``, any other deal is censored at ``as_of - created_at``. SQL gives the
    closes and the number at risk (duration >= t) per close time; S is their running product.
    """
    rows = con.execute("""
        WITH c AS (
            SELECT CASE WHEN closed_at < ?3 THEN epoch(closed_at - created_at)
                        ELSE epoch(?3 - created_at) END / 86400.0 AS days,
                   coalesce(closed_at < ?3, false) AS event
            FROM deals WHERE created_at >= ?1 AND created_at < ?2 AND created_at < ?3
              AND NOT dates_estimated
        ),
        t AS (SELECT days, count(*) AS closes FROM c WHERE event GROUP BY days)
        SELECT t.days, t.closes, (SELECT count(*) FROM c WHERE c.days >= t.days) AS at_risk
        FROM t ORDER BY t.days
    """, [start, stop, as_of]).fetchall()
    n = con.execute("SELECT count(*) FROM deals WHERE created_at >= ?1 AND created_at < ?2 "
                    "AND created_at < ?3 AND NOT dates_estimated", [start, stop, as_of]).fetchone()[0]
    max_days = con.execute("""
        SELECT max(CASE WHEN closed_at < ?3 THEN epoch(closed_at - created_at)
                        ELSE epoch(?3 - created_at) END / 86400.0)
        FROM deals WHERE created_at >= ?1 AND created_at < ?2 AND created_at < ?3 AND NOT dates_estimated
    """, [start, stop, as_of]).fetchone()[0]
    # Exact rational products: S often reaches exactly 1/2 (e.g. 181/362 with no censoring before the
    # median), where a float product may land a hair above 0.5 and move the median one close later.
    from fractions import Fraction
    steps, surv = [], Fraction(1)
    for days, closes, at_risk in rows:
        surv *= 1 - Fraction(closes, at_risk)
        steps.append((days, surv))
    median = next((t for t, sv in steps if sv <= Fraction(1, 2)), None)
    last = steps[-1][1] if steps else Fraction(1)

    def p_within(d):
        if n == 0:
            return None
        if d > max_days and last > 0:   # past the follow-up with a deal still open there
            return None
        sv = Fraction(1)
        for t, v in steps:
            if t <= d:
                sv = v
        return float(1 - sv)

    return {"median_days": median, **{f"p_close_within_{d}_days": p_within(d) for d in horizons}}


def metrics(con: duckdb.DuckDBPyConnection, start, stop, as_of, *, stuck_quantile: float = 0.9,
            with_bottleneck: bool = False, with_survival: bool = False) -> dict:
    """All compared metrics for the period ``start <= t < stop`` seen at ``as_of`` (datetimes).

    ``with_bottleneck=True`` adds the bottleneck (weekly snapshot counts) and ``with_survival=True``
    the Kaplan-Meier close-time numbers; both are off in the timed benchmark, whose figures in
    docs/performance.md were measured without them.
    """
    con.execute("SET VARIABLE p_start = ?::TIMESTAMP", [start])
    con.execute("SET VARIABLE p_stop = ?::TIMESTAMP", [stop])
    con.execute("SET VARIABLE as_of = ?::TIMESTAMP", [as_of])
    # The amount as known at as_of (docs/data-contract.md, deal_changes.csv): the last change before
    # it; before the first change, the first change's value; without changes, deals.csv's amount.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE known AS
        WITH ranked AS (
            SELECT deal_id, amount,
                   row_number() OVER (PARTITION BY deal_id ORDER BY
                       changed_at < getvariable('as_of') DESC,
                       CASE WHEN changed_at < getvariable('as_of') THEN changed_at END DESC,
                       changed_at ASC) AS rn
            FROM amount_changes
        )
        SELECT d.deal_id, CASE WHEN r.deal_id IS NULL THEN d.amount ELSE r.amount END AS amount
        FROM deals d LEFT JOIN (SELECT * FROM ranked WHERE rn = 1) r USING (deal_id)
    """)
    # Visits as of as_of: begun before it; ended at the next entry or at close when seen.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE v AS
        SELECT visits.* REPLACE (k.amount AS amount),
               CASE WHEN next_entered_at < getvariable('as_of') THEN next_entered_at
                    WHEN next_entered_at IS NULL AND closed_at < getvariable('as_of') THEN closed_at
               END AS ended_at
        FROM visits JOIN known k USING (deal_id) WHERE entered_at < getvariable('as_of')
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE d AS
        SELECT deals.* REPLACE (k.amount AS amount),
               created_at < getvariable('as_of')
                 AND (closed_at IS NULL OR closed_at >= getvariable('as_of')) AS open_at_as_of,
               closed_at >= getvariable('p_start') AND closed_at < getvariable('p_stop')
                 AND closed_at < getvariable('as_of') AS closed_in_p
        FROM deals JOIN known k USING (deal_id)
    """)
    out: dict = {}

    out["snapshot"] = _rows(con, """
        WITH cur AS (
            SELECT stage_index, amount FROM v
            WHERE ended_at IS NULL AND created_at < getvariable('as_of')
        )
        SELECT s.stage, count(cur.stage_index) AS open_deals,
               CASE WHEN count(cur.stage_index) > 0 THEN sum(cur.amount) ELSE 0 END AS open_amount
        FROM stages s LEFT JOIN cur USING (stage_index)
        GROUP BY s.stage, s.stage_index ORDER BY s.stage_index
    """)

    con.execute("""
        CREATE OR REPLACE TEMP TABLE cohort AS
        SELECT d.deal_id, d.status, d.closed_at < getvariable('as_of') AS closed_seen, f.furthest
        FROM d LEFT JOIN (SELECT deal_id, max(stage_index) AS furthest FROM v GROUP BY deal_id) f
             USING (deal_id)
        WHERE created_at >= getvariable('p_start') AND created_at < getvariable('p_stop')
          AND created_at < getvariable('as_of')
    """)
    c = con.execute("""
        SELECT count(*), count(*) FILTER (closed_seen AND status = 'won'),
               count(*) FILTER (closed_seen AND status = 'lost'),
               count(*) FILTER (closed_seen IS NOT TRUE)
        FROM cohort
    """).fetchone()
    out["cohort"] = {"deals": c[0], "won": c[1], "lost": c[2], "open": c[3]}
    funnel = _rows(con, """
        SELECT s.stage, s.stage_index,
               (SELECT count(*) FROM cohort
                WHERE furthest >= s.stage_index OR (closed_seen AND status = 'won')) AS reached
        FROM stages s ORDER BY s.stage_index
    """)
    for i, row in enumerate(funnel):
        nxt = funnel[i + 1]["reached"] if i + 1 < len(funnel) else out["cohort"]["won"]
        row["conversion"] = nxt / row["reached"] if row["reached"] else None
        del row["stage_index"]
    out["funnel"] = funnel

    counts = ", ".join(f"count(*) FILTER (outcome = '{o}') AS \"{o}\"" for o in OUTCOMES)
    flow = _rows(con, f"""
        WITH b AS (
            SELECT stage_index,
                   CASE WHEN next_entered_at < getvariable('as_of') AND next_stage_index = stage_index + 1
                          THEN 'advanced'
                        WHEN next_entered_at < getvariable('as_of') AND next_stage_index > stage_index + 1
                          THEN 'skipped ahead'
                        WHEN next_entered_at < getvariable('as_of') AND next_stage_index < stage_index
                          THEN 'moved back'
                        WHEN ended_at IS NOT NULL AND next_entered_at IS NULL AND status = 'won' THEN 'won'
                        WHEN ended_at IS NOT NULL AND next_entered_at IS NULL AND status = 'lost' THEN 'lost'
                        ELSE 'still there' END AS outcome
            FROM v WHERE entered_at >= getvariable('p_start') AND entered_at < getvariable('p_stop')
        )
        SELECT s.stage, count(b.stage_index) AS visits,
               {counts}
        FROM stages s LEFT JOIN b USING (stage_index)
        GROUP BY s.stage, s.stage_index ORDER BY s.stage_index
    """)
    out["stage_flow"] = flow

    out["time_in_stage"] = _rows(con, """
        WITH e AS (
            SELECT stage_index, epoch(ended_at - entered_at) / 86400.0 AS days FROM v
            WHERE ended_at >= getvariable('p_start') AND ended_at < getvariable('p_stop')
              AND NOT dates_estimated
        ),
        thr AS (
            SELECT stage_index, quantile_cont(epoch(ended_at - entered_at) / 86400.0, ?) AS threshold
            FROM v WHERE ended_at IS NOT NULL AND NOT dates_estimated GROUP BY stage_index
        ),
        stuck AS (
            SELECT v.stage_index, count(*) AS stuck_deals
            FROM v JOIN thr USING (stage_index)
            WHERE v.ended_at IS NULL
              AND epoch(getvariable('as_of') - v.entered_at) / 86400.0 > thr.threshold
            GROUP BY v.stage_index
        ),
        agg AS (
            SELECT stage_index, count(*) AS visits, avg(days) AS mean_days,
                   quantile_cont(days, 0.5) AS median_days, quantile_cont(days, 0.9) AS p90_days
            FROM e GROUP BY stage_index
        )
        SELECT s.stage, coalesce(agg.visits, 0) AS visits, agg.mean_days, agg.median_days, agg.p90_days,
               coalesce(stuck.stuck_deals, 0) AS stuck_deals
        FROM stages s LEFT JOIN agg USING (stage_index) LEFT JOIN stuck USING (stage_index)
        ORDER BY s.stage_index
    """, [stuck_quantile])

    dtc = {r["status"]: r for r in _rows(con, """
        SELECT status, count(*) AS deals, avg(epoch(closed_at - created_at) / 86400.0) AS mean_days,
               quantile_cont(epoch(closed_at - created_at) / 86400.0, 0.5) AS median_days
        FROM d WHERE closed_in_p AND status IN ('won', 'lost') AND NOT dates_estimated GROUP BY status
    """)}
    out["days_to_close"] = {
        s: {k: dtc[s][k] for k in ("deals", "mean_days", "median_days")} if s in dtc
        else {"deals": 0, "mean_days": None, "median_days": None} for s in ("won", "lost")}

    # scipy.stats.trim_mean(x, 0.1): drop int(0.1 * n) values from each end of the sorted amounts.
    r = con.execute("""
        WITH w AS (SELECT amount FROM d WHERE closed_in_p AND status = 'won'),
        k AS (SELECT amount, row_number() OVER (ORDER BY amount) AS rn, count(*) OVER () AS n
              FROM w WHERE amount IS NOT NULL)
        SELECT (SELECT count(*) FROM w), (SELECT avg(amount) FROM w),
               (SELECT quantile_cont(amount, 0.5) FROM w),
               (SELECT avg(amount) FROM k
                WHERE rn > floor(0.1 * n) AND rn <= n - floor(0.1 * n))
    """).fetchone()
    out["deal_size"] = {"deals": r[0], "mean": r[1], "median": r[2], "trimmed_mean": r[3]}

    won, lost = con.execute("""
        SELECT count(*) FILTER (status = 'won'), count(*) FILTER (status = 'lost')
        FROM d WHERE closed_in_p
    """).fetchone()
    out["win_rate"] = won / (won + lost) if won + lost else None

    for by in ("source", "product", "owner"):
        extra = (", quantile_cont(epoch(closed_at - created_at) / 86400.0, 0.5) "
                 "FILTER (closed_in_p AND status = 'won' AND NOT dates_estimated) AS median_days_to_close"
                 if by == "owner" else "")
        rows = _rows(con, f"""
            WITH g AS (
                SELECT {by} AS key,
                       CASE WHEN count(*) FILTER (closed_in_p AND status = 'won') > 0
                            THEN sum(amount) FILTER (closed_in_p AND status = 'won') ELSE 0 END AS won_amount,
                       count(*) FILTER (closed_in_p AND status = 'won') AS won_deals,
                       count(*) FILTER (closed_in_p AND status = 'lost') AS lost_deals,
                       count(amount) FILTER (closed_in_p AND status = 'won') AS won_known,
                       CASE WHEN count(*) FILTER (open_at_as_of) > 0
                            THEN sum(amount) FILTER (open_at_as_of) ELSE 0 END AS open_amount
                       {extra}
                FROM d WHERE closed_in_p OR open_at_as_of GROUP BY {by}
            )
            SELECT * EXCLUDE (won_known),
                   CASE WHEN won_deals + lost_deals > 0 THEN won_deals / (won_deals + lost_deals) END
                     AS win_rate,
                   -- won deals of unknown amount are left out of both sum and count
                   CASE WHEN won_known > 0 THEN won_amount / won_known END AS mean_size,
                   CASE WHEN sum(won_amount) OVER () > 0 THEN won_amount / sum(won_amount) OVER () END
                     AS share
            FROM g ORDER BY won_amount DESC, key
        """)
        out[f"amount_by_{by}"] = rows
    if with_bottleneck:
        out["bottleneck"] = bottleneck(con, start, stop, as_of, out["funnel"])
    if with_survival:
        out["close_time_survival"] = close_time_survival(con, start, stop, as_of)
    return out
