"""Stage visits and the as-of views as Ibis expressions: the one definition every metric uses.

Visibility rule (``docs/metrics.md``): an event at ``t`` is seen at ``as_of`` when ``t < as_of``; a
deal closed at or after ``as_of`` is open at ``as_of``. A *visit* runs from a stage entry to the
deal's next entry; the last visit of a closed deal ends at ``closed_at``; a visit not ended before
``as_of`` is open (censored at ``as_of``).

Portable across engines: no boolean-to-integer casts (Postgres refuses them), every division on
floats (Postgres divides integers as integers), durations from epoch seconds (whole seconds on
Spark, BigQuery and Snowflake: ``docs/engines.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..period import as_instant

from ..contract import DATES_ESTIMATED

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from ..period import Period
    from .tables import Tables

__all__ = ["OUTCOMES", "visits", "visits_as_of", "open_at", "closed_then", "not_closed_then", "deals_as_of",
           "final_status_as_of", "status_then", "known_amounts", "known_then", "just_after", "closed_in",
           "dates_estimated", "instant", "instants", "in_period", "days_between", "count_if", "exact_sum",
           "exact_mean", "DAYS_SCALE", "exact_quantile"]

#: What became of a stage visit, in display order (``outcome`` holds the position in this tuple).
OUTCOMES = ("advanced", "skipped ahead", "moved back", "won", "lost", "still there")

SECONDS_PER_DAY = 86_400.0
#: Digits after the point :func:`exact_sum` keeps when adding days (amounts keep its default 10).
DAYS_SCALE = 20


def instant(value) -> "ir.TimestampScalar":
    """A naive timestamp literal (UTC where ``value`` has a zone)."""
    import ibis

    return ibis.literal(as_instant(value).to_pydatetime(), type="timestamp")


def instants(times) -> "ir.Table":
    """The instants ``times`` as a small table: ``i`` (position in ``times``) and ``at`` (naive
    timestamp, microseconds: every engine reads them)."""
    import ibis
    import pandas as pd

    at = pd.DatetimeIndex([as_instant(x) for x in times]).astype("datetime64[us]")
    return ibis.memtable(pd.DataFrame({"i": range(len(at)), "at": at}).astype({"i": "int64"}),
                         schema={"i": "int64", "at": "timestamp"})


def in_period(column: "ir.TimestampValue", period: "Period") -> "ir.BooleanValue":
    """``start <= t < end + 1 day`` (null is in no period)."""
    return (column >= instant(period.start)) & (column < instant(period.stop))


def days_between(start: "ir.TimestampValue", end: "ir.TimestampValue") -> "ir.FloatingValue":
    """Fractional days from ``start`` to ``end`` (seconds / 86400, on floats)."""
    seconds = end.epoch_seconds().cast("float64") - start.epoch_seconds().cast("float64")
    return seconds / SECONDS_PER_DAY


def exact_sum(values: "ir.FloatingValue", where: "ir.BooleanValue | None" = None, *,
              scale: int = 10) -> "ir.FloatingScalar":
    """The sum of ``values`` (of the rows meeting ``where``; null when every value is null), added as
    exact decimals (38 digits, ``scale`` after the point) and returned as a float: the same total
    whatever order a parallel engine adds the rows in (a float sum's last digits depend on that
    order). ``scale=10`` suits amounts (totals below 10**28); days use ``DAYS_SCALE``, whose 20
    digits after the point keep a fraction of a day to float precision (totals below 10**18 days).

    Examples
    --------
    >>> exact_sum(deals.amount, where=deals.status == "won")          # doctest: +SKIP

    Values too small to survive the ``scale`` digits (every one below half of ``10**-scale``, e.g. a
    subnormal amount) keep their float sum rather than becoming 0.
    """
    import ibis

    total = values.cast(f"decimal(38, {scale})").sum(where=where).cast("float64")
    too_small = values.abs().max(where=where) < 10.0 ** -scale / 2
    return ibis.ifelse((total == 0) & too_small, values.sum(where=where), total)


def exact_mean(values: "ir.FloatingValue", where: "ir.BooleanValue | None" = None, *,
               scale: int = 10) -> "ir.FloatingScalar":
    """The mean of the non-null ``values`` (of the rows meeting ``where``; null when there are none):
    their :func:`exact_sum` divided by their count, so the same mean whatever order the engine adds
    the rows in (values too small for the ``scale`` digits: their float sum, as there).

    Examples
    --------
    >>> exact_mean(won.days_to_close, scale=DAYS_SCALE)               # doctest: +SKIP
    """
    return exact_sum(values, where, scale=scale) / values.count(where=where).cast("float64")


def count_if(condition: "ir.BooleanValue") -> "ir.IntegerScalar":
    """How many rows meet ``condition`` (a sum of a conditional: Postgres has no bool-to-int cast)."""
    import ibis

    return ibis.ifelse(condition, 1, 0).sum().fill_null(0)


def exact_quantile(values: "ir.NumericColumn", q: float, backend: str,
                   where: "ir.BooleanValue | None" = None) -> "ir.FloatingScalar":
    """The linear-interpolation ``q`` quantile (of the rows meeting ``where``), on engines that
    compute it exactly.

    Raises
    ------
    NotImplementedError
        On engines where Ibis has only an approximate quantile (BigQuery, Trino): funnelkit never
        approximates silently.
    """
    if backend in APPROXIMATE_QUANTILE_BACKENDS:
        raise NotImplementedError(
            f"the {backend} backend has no exact quantile in Ibis, and funnelkit does not approximate "
            "quantiles silently (docs/engines.md): run this metric on DuckDB, Postgres or PySpark")
    return values.quantile(q, where=where)


#: Backends whose Ibis quantile is approximate: quantile metrics are refused there.
APPROXIMATE_QUANTILE_BACKENDS = frozenset({"bigquery", "trino", "druid", "clickhouse"})


def visits(t: "Tables") -> "ir.Table":
    """One row per stage visit over the whole history (not cut at any as-of instant).

    Columns: ``deal_id``, ``deal_row``, ``stage_index``, ``entered_at``, ``next_entered_at`` and
    ``next_stage_index`` (the deal's next entry; null for its last visit), ``is_last``, ``ends_at``
    (when the visit ends: the next entry, else the deal's close; null while it never does), and
    the deal's ``created_at``, ``closed_at``, ``status`` and, when the deals have it, its
    ``dates_estimated`` flag.
    """
    import ibis

    e = t.entries
    w = ibis.window(group_by=e.deal_id, order_by=[e.entered_at, e.stage_index])
    v = e.mutate(next_entered_at=e.entered_at.lead().over(w),
                 next_stage_index=e.stage_index.lead().over(w))
    d = t.deals.select("deal_id", "deal_row", "created_at", "closed_at", "status",
                       *[c for c in (DATES_ESTIMATED,) if c in t.deals.columns])
    v = v.join(d, "deal_id")
    return v.mutate(is_last=v.next_stage_index.isnull(), ends_at=v.next_entered_at.fill_null(v.closed_at))


#: Stands in for a visit that never ends (its ``ends_at`` is null): after every instant.
NEVER = datetime(9999, 12, 31)

#: Stands in for a bound that is always passed (an open start): before every instant.
EVER = datetime(1, 1, 1)


def open_at(v: "ir.Table", at) -> "ir.BooleanValue":
    """Per visit of ``v`` (:func:`visits`): whether it is the deal's current visit at ``at`` (an
    instant, or a timestamp column of a table joined to ``v``): begun before ``at`` and not ended
    before it (``entered_at < at <= ends_at``; a visit that never ends is open ever after)."""
    import ibis

    return (v.entered_at < at) & (at <= v.ends_at.fill_null(ibis.literal(NEVER, type="timestamp")))


def _in_spell(table: "ir.Table", spells: "ir.Table", at) -> list:
    """Join predicates: ``table``'s deal (``deal_row``) is inside one of its closed ``spells`` at
    ``at`` (an instant, or a timestamp column of ``table``): ``closed_at < at <= reopened_at``."""
    return [table.deal_row == spells._spell_row, spells._spell_from < at, at <= spells._spell_until]


def _spells(t: "Tables") -> "ir.Table":
    s = t.closed_spells
    return s.select(_spell_row=s.deal_row, _spell_from=s.closed_at, _spell_until=s.reopened_at,
                    closed_then=s.status)


def closed_then(t: "Tables", table: "ir.Table", at) -> "ir.Table":
    """``table`` (with ``deal_row``) plus ``closed_then``: ``won``/``lost`` when at ``at`` (an instant,
    or a timestamp column of ``table``) its deal is closed by an earlier close not yet reopened (one of
    its closed spells, :attr:`Tables.closed_spells`, holds ``at``), else null. The one engine definition
    of "closed at T by an earlier close" (:func:`funnelkit.changes.closed_spells`); a deal's spells never
    overlap, so each row matches at most one."""
    import ibis

    if t.closed_spells is None:
        return table.mutate(closed_then=ibis.null("string"))
    s = _spells(t)
    return table.left_join(s, _in_spell(table, s, at)).drop("_spell_row", "_spell_from", "_spell_until")


def not_closed_then(t: "Tables", table: "ir.Table", at) -> "ir.Table":
    """The rows of ``table`` whose deal is not closed at ``at`` by an earlier close (:func:`closed_then`);
    all of them without status changes."""
    if t.closed_spells is None:
        return table
    s = _spells(t)
    return table.anti_join(s, _in_spell(table, s, at))


def visits_as_of(t: "Tables", as_of) -> "ir.Table":
    """Stage visits begun before ``as_of``, ended or still open at ``as_of``.

    The columns of :func:`visits` plus ``ended_at`` (null while open), ``is_open`` (the deal's current
    visit, and the deal not closed at ``as_of`` by an earlier close: :func:`closed_then`), ``outcome``
    (position in :data:`OUTCOMES`) and ``days`` (fractional days from entry to ``ended_at``, or to
    ``as_of`` for an open visit).
    """
    import ibis

    at = instant(as_of)
    v = t.visits
    v = closed_then(t, v.filter(v.entered_at < at), at)
    next_seen = v.next_entered_at.notnull() & (v.next_entered_at < at)
    close_seen = v.is_last & v.closed_at.notnull() & (v.closed_at < at)
    none = ibis.null().cast("timestamp")
    v = v.mutate(
        ended_at=ibis.cases((next_seen, v.next_entered_at), (close_seen, v.closed_at), else_=none),
        is_open=open_at(v, at) & v.closed_then.isnull(),
        outcome=ibis.cases(
            (next_seen & (v.next_stage_index == v.stage_index + 1), 0),
            (next_seen & (v.next_stage_index > v.stage_index + 1), 1),
            (next_seen & (v.next_stage_index < v.stage_index), 2),
            (close_seen & (v.status == "won"), 3),
            (close_seen & (v.status == "lost"), 4),
            else_=5),
    )
    return v.mutate(days=days_between(v.entered_at, v.ended_at.fill_null(at))).drop("closed_then")


def deals_as_of(t: "Tables", as_of, *, amounts: bool = True) -> "ir.Table":
    """Deals created before ``as_of``, with ``status_as_of`` (open/won/lost as known at ``as_of``: the
    final close when seen, else won/lost inside a closed spell of an earlier close (:func:`closed_then`),
    else open; :func:`funnelkit.changes.known_at`'s status rule) and ``closed_as_of`` (the final
    ``closed_at`` when before ``as_of``, else null: the won/lost metrics read that and ``status``,
    an earlier close is history); other columns kept. With a
    change log, ``amount`` is the amount as known at ``as_of`` (:func:`known_amounts`);
    ``amounts=False`` leaves the ``amount`` column out (nothing to look up)."""
    at = instant(as_of)
    d = t.deals.filter(t.deals.created_at < at)
    known = t.amounts_at(as_of) if amounts else None
    if not amounts:
        d = d.drop("amount")
    elif known is not None:
        d = d.drop("amount").join(known, "deal_row")
    return status_then(t, d, at)


def status_then(t: "Tables", table: "ir.Table", at) -> "ir.Table":
    """``table`` (with ``deal_row``, ``closed_at`` and ``status``: the deal's final close) plus
    ``status_as_of``, the status (open/won/lost) as known at ``at`` (an instant, or the name of a
    timestamp column of ``table``): the final close's status when it is before ``at``, else
    won/lost inside a closed spell of an earlier close (:func:`closed_then`), else open (also
    before the deal's creation: nothing had closed it); and ``closed_as_of``, the final
    ``closed_at`` when before ``at``, else null. The rule of :func:`funnelkit.changes.known_for`'s
    status and of :func:`deals_as_of`."""
    import ibis

    d = closed_then(t, table, table[at] if isinstance(at, str) else at)
    at = d[at] if isinstance(at, str) else at
    seen_close = d.closed_at.notnull() & (d.closed_at < at)
    return d.mutate(closed_as_of=ibis.ifelse(seen_close, d.closed_at, ibis.null().cast("timestamp")),
                    status_as_of=ibis.ifelse(seen_close, d.status, d.closed_then.fill_null("open"))
                    ).drop("closed_then")


def final_status_as_of(d: "ir.Table") -> "ir.StringValue":
    """Per row of :func:`deals_as_of`: won/lost when the deal's final close is seen, else open (the
    status of the won/lost metrics: an earlier close is history, docs/metrics.md section 9)."""
    import ibis

    return ibis.ifelse(d.closed_as_of.notnull(), d.status, "open")


def known_amounts(t: "Tables", times) -> "ir.Table | None":
    """The amounts as known at each instant of ``times`` when the data set has a change log
    (:meth:`Tables.amounts_known`), else None (the deals' own amounts are the known ones): ``i``
    (position in ``times``), ``deal_row`` and ``amount``, for the deals created before each instant."""
    return t.amounts_known(times)


def known_then(t: "Tables", table: "ir.Table", field: str, at, *, name: str | None = None) -> "ir.Table":
    """``table`` (with ``deal_row`` and the deal's own ``field``, its value without a change log) plus
    ``name`` (default: ``field`` itself, replaced): the value of ``field`` (``amount``,
    ``expected_close_date`` or ``forecast_category``) as known at ``at`` (an instant, or the name of a timestamp column of
    ``table``).

    The change of the change log with ``known_from < at <= known_until`` (a null bound is open:
    :func:`funnelkit.engine.tables.change_log_values`), else the deal's own value: the rule of
    :func:`funnelkit.changes.known_for`. A deal's changes cover disjoint spans, so each row matches
    at most one. Known just after ``at`` (changes at ``at`` seen too) is known at :func:`just_after`.
    """
    import ibis

    c = {"amount": t.amount_changes, "expected_close_date": t.date_changes,
         "forecast_category": t.category_changes}[field]
    name = name or field
    if c is None:
        return table.mutate(**{name: table[field]})
    at = table[at] if isinstance(at, str) else at
    seen = c.select(_known_row=c.deal_row, _known_from=c.known_from, _known_until=c.known_until,
                    _known_value=c[field])
    # Open bounds as the earliest and latest instants: a join on equality and ranges only (an OR of
    # null tests makes DuckDB filter a far larger product).
    j = table.left_join(seen, [table.deal_row == seen._known_row,
                               seen._known_from.fill_null(ibis.literal(EVER, type="timestamp")) < at,
                               at <= seen._known_until.fill_null(ibis.literal(NEVER, type="timestamp"))])
    j = j.mutate(**{name: ibis.ifelse(j._known_row.notnull(), j._known_value, j[field])})
    return j.drop("_known_row", "_known_from", "_known_until", "_known_value")


def just_after(at: "ir.TimestampValue") -> "ir.TimestampValue":
    """The instant one microsecond (every engine's timestamp resolution) after ``at``: what is known
    there is what is known at ``at`` with the events at ``at`` seen too."""
    import ibis

    return at + ibis.interval(microseconds=1)


def dates_estimated(table: "ir.Table") -> "ir.BooleanValue":
    """Per row of a deals or visits table: whether the deal is flagged ``dates_estimated`` (its dates
    do not measure a duration); false where the flag or the column is missing. The engine side of
    :func:`funnelkit.metrics._common.dates_estimated`."""
    import ibis

    if DATES_ESTIMATED not in table.columns:
        return ibis.literal(False)
    return table[DATES_ESTIMATED].fill_null(False)


def closed_in(t: "Tables", period: "Period") -> "ir.Table":
    """Deals closed (won or lost) in ``period`` as seen at its ``as_of``: the columns of
    :func:`deals_as_of` plus ``days_to_close`` (fractional days from creation to close; null, unknown,
    for a deal flagged ``dates_estimated``)."""
    import ibis

    d = deals_as_of(t, period.as_of)
    d = d.filter(d.status_as_of.isin(["won", "lost"]) & in_period(d.closed_as_of, period))
    days = ibis.ifelse(dates_estimated(d), ibis.null("float64"), days_between(d.created_at, d.closed_at))
    return d.mutate(days_to_close=days)
