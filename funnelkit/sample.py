"""A realistic synthetic data set in the data contract, for demos, tests and benchmarks.

The story the numbers tell (so that every metric has something to show):

* Five stages, ``Lead -> Qualified -> Meeting -> Proposal -> Negotiation``; won/lost are outcomes.
* Five lead sources with different volumes, win rates and deal sizes: many cheap *Contextual ads*
  leads that rarely close, few *Referrals* that close often, big but slow *Conferences & events*.
  Referred and conference deals often start past Lead (they skip it).
* Three product types with different sizes: many small *Set* deals, *Collection* in the middle,
  fewer large *Service package* deals that take longer.
* Eight owners with different skill and speed; one joins in July 2025.
* Seasonality: a summer dip and a Q4 push in new deals, and more wins decided in November and
  December; a little growth over the two years.
* Some deals skip a stage, a few move back one stage, some go quiet for weeks (stalled): the longer
  a deal sits in a stage, the less likely it is to be won.
* Amounts are lognormal by product and source, with a few very large outlier deals; some early
  open deals have no amount yet.
* The window ends with open deals, some of them stuck far longer than usual in their stage.

Everything is vectorised numpy (one loop over at most a dozen stage *steps*, never over deals), so
a million deals take seconds. The same seed gives byte-identical files.

Examples
--------
>>> deals, history, pipeline = generate(200, seed=1)
>>> list(deals.columns) == list(DEAL_COLUMNS), pipeline.stages[0]
(True, 'Lead')
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pandas as pd

from .contract import (CHANGE_COLUMNS, CHANGES_FILE, DEAL_COLUMNS, DEALS_FILE, HISTORY_COLUMNS, HISTORY_FILE,
                       PIPELINE_FILE, Pipeline)
from .errors import ArgumentError
from .writer import TABLE_FORMATS, write_dataset

__all__ = ["generate", "write_sample", "STAGES", "SOURCES", "PRODUCTS", "OWNERS",
           "DEFAULT_START", "DEFAULT_DAYS", "NAMES_ZH", "LANGUAGES"]

DEFAULT_START = "2024-10-01"
DEFAULT_DAYS = 730

STAGES = ("Lead", "Qualified", "Meeting", "Proposal", "Negotiation")

#: source: (share of leads, quality (logit), size factor, P(start at Qualified), P(start at Meeting))
SOURCES = {
    "Backlinks": (0.26, 0.00, 0.90, 0.05, 0.00),
    "Targeted ads": (0.24, -0.10, 1.00, 0.03, 0.00),
    "Contextual ads": (0.27, -0.75, 0.75, 0.00, 0.00),
    "Referrals": (0.07, 1.10, 1.20, 0.40, 0.10),
    "Conferences & events": (0.16, 0.30, 1.50, 0.25, 0.10),
}
#: product: (share, median amount, quality (logit), dwell factor)
PRODUCTS = {
    "Set": (0.50, 1_200.0, 0.15, 0.75),
    "Collection": (0.33, 4_800.0, 0.00, 1.00),
    "Service package": (0.17, 16_000.0, -0.25, 1.55),
}
#: owner: (share of deals, skill (logit), speed factor on time in stage, first day with deals)
OWNERS = {
    "Alice Moreno": (0.17, 0.55, 0.80, None),
    "Ben Okafor": (0.15, 0.10, 1.00, None),
    "Chloe Nguyen": (0.14, 0.30, 0.90, None),
    "Daniel Weiss": (0.13, -0.25, 1.25, None),
    "Emma Lindqvist": (0.12, 0.00, 1.05, None),
    "Farid Haddad": (0.11, -0.45, 1.20, None),
    "Grace Kim": (0.10, 0.20, 0.95, None),
    "Hugo Silva": (0.08, -0.10, 1.10, "2025-07-01"),
}
#: The Chinese-named variant (``lang="zh"``): the same story, with the stage, source, product and
#: owner names a Chinese sales team writes.
NAMES_ZH = {
    "Lead": "线索", "Qualified": "资格确认", "Meeting": "方案演示", "Proposal": "报价",
    "Negotiation": "谈判",
    "Backlinks": "外部链接", "Targeted ads": "定向广告", "Contextual ads": "搜索广告",
    "Referrals": "客户推荐", "Conferences & events": "展会",
    "Set": "标准套装", "Collection": "系列产品", "Service package": "服务套餐",
    "Alice Moreno": "张伟", "Ben Okafor": "李娜", "Chloe Nguyen": "王芳", "Daniel Weiss": "刘洋",
    "Emma Lindqvist": "陈静", "Farid Haddad": "杨磊", "Grace Kim": "赵敏", "Hugo Silva": "黄强",
}
#: Languages of the sample's names: English (the default) and Chinese.
LANGUAGES = ("en", "zh")

#: Median days in each stage (before product and owner factors).
_STAGE_DAYS = np.array([5.0, 9.0, 11.0, 15.0, 13.0])
#: Base logit of losing the deal at the end of a visit of each stage (before the deal's quality).
_LOSE_BASE = np.array([-0.35, -0.9, -1.1, -1.1, 0.0])
#: Base logit of winning at the end of a Negotiation visit.
_WIN_BASE = 0.5
#: How much a long visit (log of days over the stage median) lowers the chance of success.
_STALE_EFFECT = 0.9
#: New deals per calendar month (relative): summer dip, Q4 push, quiet December holidays.
_MONTH_VOLUME = np.array([0.95, 1.0, 1.1, 1.0, 1.0, 0.9, 0.7, 0.65, 1.05, 1.2, 1.3, 0.95])
#: Win logit shift for decisions taken in each month (Q4 push, summer dip).
_MONTH_WIN = np.array([-0.1, 0.0, 0.1, 0.0, 0.0, 0.0, -0.25, -0.3, 0.0, 0.1, 0.35, 0.4])


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, n: int, shares) -> np.ndarray:
    p = np.asarray(shares, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int8)


def _month_of(minutes: np.ndarray, start: np.datetime64) -> np.ndarray:
    """Calendar month (0..11) of instants given as minutes after ``start``."""
    months = (start + minutes.astype("timedelta64[m]")).astype("datetime64[M]").astype(np.int64)
    return months % 12


def _simulate(n: int, seed: int, start: np.datetime64, days: int) -> dict:
    rng = np.random.default_rng(seed)
    end = days * 1440  # minutes after start: the export instant (nothing at or after it is recorded)

    # ---- creation dates: trend x month seasonality x weekday ------------------------------------
    day_dates = start.astype("datetime64[D]") + np.arange(days)
    month = day_dates.astype("datetime64[M]").astype(np.int64) % 12
    weekday = (day_dates.astype(np.int64) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    weight = (1.0 + 0.2 * np.arange(days) / 365.0) * _MONTH_VOLUME[month]
    weight *= np.where(weekday >= 5, 0.12, 1.0)
    day = rng.choice(days, size=n, p=weight / weight.sum())
    # 15% of deals come from a tool that records dates only; the others have a time of day.
    date_only = rng.random(n) < 0.15
    minute_of_day = np.clip(rng.normal(11.5 * 60, 150, n), 7 * 60, 20 * 60).astype(np.int64)
    created = day.astype(np.int64) * 1440 + np.where(date_only, 0, minute_of_day)

    # ---- who, what, where from -------------------------------------------------------------------
    src_names = list(SOURCES)
    src_par = np.array(list(SOURCES.values()))
    source = _pick(rng, n, src_par[:, 0])
    prod_names = list(PRODUCTS)
    prod_par = np.array(list(PRODUCTS.values()))
    # Conferences sell more service packages, ads sell more sets.
    product = _pick(rng, n, prod_par[:, 0])
    upsell = (source == src_names.index("Conferences & events")) & (rng.random(n) < 0.25)
    product[upsell] = prod_names.index("Service package")
    owner_names = list(OWNERS)
    owner_share = np.array([v[0] for v in OWNERS.values()])
    owner = _pick(rng, n, owner_share)
    fallback = _pick(rng, n, np.where([v[3] is None for v in OWNERS.values()], owner_share, 0.0))
    for i, (_, _, _, joined) in enumerate(OWNERS.values()):
        if joined is not None:
            before = created < (np.datetime64(joined, "m") - start).astype(np.int64)
            owner = np.where((owner == i) & before, fallback, owner)
    skill = np.array([v[1] for v in OWNERS.values()])
    speed = np.array([v[2] for v in OWNERS.values()])

    quality = (src_par[source, 1] + prod_par[product, 2] + skill[owner]
               + rng.normal(0.0, 0.6, n))
    pace = prod_par[product, 3] * speed[owner]

    # ---- amounts: lognormal by product and source, a few huge outliers ----------------------------
    median = prod_par[product, 1] * src_par[source, 2]
    amount = median * np.exp(rng.normal(0.0, 0.55, n))
    outlier = rng.random(n) < 0.004
    amount[outlier] *= np.exp(rng.uniform(1.6, 3.0, outlier.sum()))
    # Sets sell at round prices; the rest carry cents.
    is_set = product == prod_names.index("Set")
    amount = np.where(is_set, np.round(amount, -1), np.round(amount, 2))

    # ---- the stage walk: one iteration per step, all deals at once --------------------------------
    q_first = src_par[source, 3]
    m_first = src_par[source, 4]
    u = rng.random(n)
    stage = np.where(u < m_first, 2, np.where(u < m_first + q_first, 1, 0)).astype(np.int64)
    # 5% of deals go quiet once for a long time (a stalled step), at a random step.
    stall_step = np.where(rng.random(n) < 0.05, rng.integers(0, 4, n), -1)

    ent_deal = [np.arange(n)]
    ent_stage = [stage.copy()]
    ent_time = [created.copy()]
    t = created.copy()
    status = np.zeros(n, dtype=np.int8)          # 0 open, 1 won, 2 lost
    closed = np.full(n, -1, dtype=np.int64)
    moved_back = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    for step in range(16):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        s = stage[idx]
        k = idx.size
        days_in = _STAGE_DAYS[s] * pace[idx] * np.exp(rng.normal(0.0, 0.75, k))
        stalled = stall_step[idx] == step
        days_in = np.where(stalled, days_in * rng.uniform(5.0, 12.0, k), days_in)
        minutes = np.maximum(np.round(days_in * 1440).astype(np.int64), 30)
        minutes = np.where(date_only[idx], np.maximum(np.ceil(days_in), 1).astype(np.int64) * 1440, minutes)
        when = t[idx] + minutes
        # People move deals in working hours: a move at night happens the next morning.
        tod = when % 1440
        night = ~date_only[idx] & ((tod < 8 * 60) | (tod >= 19 * 60))
        morning = (when // 1440 + (tod >= 19 * 60)) * 1440 + 8 * 60 + rng.integers(0, 150, k)
        when = np.where(night, morning, when)
        # Still in the stage at the export: the deal stays open here.
        beyond = when >= end
        active[idx[beyond]] = False
        keep = ~beyond
        idx, s, when, days_in = idx[keep], s[keep], when[keep], days_in[keep]
        k = idx.size
        stale = np.log(days_in / (_STAGE_DAYS[s] * pace[idx]))
        q = quality[idx]
        u1, u2, u3 = rng.random(k), rng.random(k), rng.random(k)

        back = (s >= 2) & ~moved_back[idx] & (u3 < 0.04)
        last = s == len(STAGES) - 1
        season = _MONTH_WIN[_month_of(when, start)]
        p_win = _logistic(_WIN_BASE + q + season - _STALE_EFFECT * stale)
        p_lose = _logistic(_LOSE_BASE[s] - q + _STALE_EFFECT * stale)
        won = ~back & last & (u1 < p_win)
        lost = ~back & ~won & np.where(last, True, u1 < p_lose)
        # From Proposal, a few deals are signed without a negotiation.
        won_early = ~back & ~lost & (s == 3) & (u2 < 0.08)
        won |= won_early
        advance = ~back & ~won & ~lost
        skip = advance & (s <= 2) & (u2 < 0.07)
        new_stage = np.where(back, s - 1, np.where(skip, s + 2, s + 1))

        done = won | lost
        status[idx[won]] = 1
        status[idx[lost]] = 2
        closed[idx[done]] = when[done]
        active[idx[done]] = False
        moving = back | advance
        moved_back[idx[back]] = True
        stage[idx[moving]] = new_stage[moving]
        t[idx[moving]] = when[moving]
        ent_deal.append(idx[moving])
        ent_stage.append(new_stage[moving])
        ent_time.append(when[moving])
    # (No deal can still be active: each step either ends it or moves it, and moves are bounded.)

    # ---- amounts missing on some young open deals ---------------------------------------------------
    no_amount = (status == 0) & (stage <= 1) & (rng.random(n) < 0.3)

    e_deal = np.concatenate(ent_deal)
    e_stage = np.concatenate(ent_stage)
    e_time = np.concatenate(ent_time)
    order = np.lexsort((e_stage, e_time, e_deal))
    return dict(n=n, created=created, closed=closed, status=status, amount=amount, no_amount=no_amount,
                source=source, product=product, owner=owner, date_only=date_only,
                src_names=src_names, prod_names=prod_names, owner_names=owner_names,
                e_deal=e_deal[order], e_stage=e_stage[order], e_time=e_time[order])


#: Forecast categories of the sample's change log, in order.
_CATEGORIES = ("Pipeline", "Best Case", "Commit", "Closed", "Omitted")


def _changes(sim: dict, seed: int, end: int) -> dict:
    """A change log for the simulated deals, from its own random stream (the deals and the stage
    history are the same with or without it). Times are minutes after start, like the other events.

    * Expected close date: set at creation (a typical cycle ahead; close to the real length for the
      deals that will be won, since reps read good deals well); when it passes with the deal still
      open, the rep pushes it out a few days later by 2 to 7 weeks, again and again; about one deal in
      ten is pulled in once. Open deals carry their last date in deals.csv.
    * Amount: a third of the deals with an amount start at another figure and are edited once or twice;
      a fifth of those edited and won get their final figure at the very instant of the close.
    * Forecast category: Pipeline at creation, Best Case on reaching Proposal, Commit on reaching
      Negotiation, Closed or Omitted at the close (the deals.csv value).
    """
    rng = np.random.default_rng([int(seed), 13])
    n, created, closed = sim["n"], sim["created"], sim["closed"]
    stop = np.where(closed >= 0, closed, end - 1)          # the last instant a change may have
    day = 1440
    parts = []                                                # (deal, time, field code, value)

    # ---- expected close dates (values in whole days since start) ----------------------------------
    # Reps date the deals they will win well (about their real length); the rest hopefully early.
    hopeful = np.round(np.exp(rng.normal(np.log(45), 0.45, n))).astype(np.int64)
    real = np.maximum(np.round((closed - created) / day * rng.uniform(0.75, 1.25, n)), 1).astype(np.int64)
    expected = created // day + np.where(sim["status"] == 1, real, hopeful)
    parts.append((np.arange(n), created, 1, expected.astype(float)))
    pulled = rng.random(n) < 0.1
    pull_at = created + (rng.random(n) * np.maximum(expected * day - created, 0)).astype(np.int64)
    pull_to = np.maximum(pull_at // day + 1, expected - rng.integers(7, 30, n))
    do_pull = pulled & (pull_at < stop) & (pull_to < expected) & (pull_at > created)
    parts.append((np.flatnonzero(do_pull), pull_at[do_pull], 1, pull_to[do_pull].astype(float)))
    expected = np.where(do_pull, pull_to, expected)
    current = expected.copy()
    for _ in range(24):
        when = (current + 1) * day + rng.integers(0, 5 * day, n)   # a few days after the date passed
        push = when < stop
        if not push.any():
            break
        current = np.where(push, current + 7 * rng.integers(2, 8, n), current)
        parts.append((np.flatnonzero(push), when[push], 1, current[push].astype(float)))
    sim_expected = current

    # ---- amount edits ---------------------------------------------------------------------------
    amount = sim["amount"]
    edited = ~sim["no_amount"] & (rng.random(n) < 0.33)
    first = np.round(amount * rng.uniform(0.6, 1.3, n), -1)
    two = edited & (rng.random(n) < 0.35)
    life = stop - created
    t1 = created + (life * rng.uniform(0.1, 0.5, n)).astype(np.int64)
    t2 = created + (life * rng.uniform(0.5, 0.95, n)).astype(np.int64)
    at_close = edited & (sim["status"] == 1) & (rng.random(n) < 0.2)
    t2 = np.where(at_close, stop, t2)
    middle = np.round((first + amount) / 2, -1)
    parts.append((np.flatnonzero(edited), created[edited], 0, first[edited]))
    parts.append((np.flatnonzero(two), t1[two], 0, middle[two]))
    parts.append((np.flatnonzero(edited), t2[edited], 0, amount[edited]))

    # ---- forecast categories --------------------------------------------------------------------
    parts.append((np.arange(n), created, 2, np.zeros(n)))
    for stage, code in ((3, 1.0), (4, 2.0)):
        e = sim["e_stage"] >= stage
        reached = pd.Series(sim["e_time"][e]).groupby(sim["e_deal"][e]).min()
        rows = reached.index.to_numpy()
        parts.append((rows, reached.to_numpy(), 2, np.full(len(rows), code)))
    shut = closed >= 0
    parts.append((np.flatnonzero(shut), closed[shut], 2, np.where(sim["status"][shut] == 1, 3.0, 4.0)))

    deal = np.concatenate([p[0] for p in parts])
    time = np.concatenate([p[1] for p in parts])
    fld = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    value = np.concatenate([p[3] for p in parts])
    return dict(c_deal=deal, c_time=time, c_field=fld, c_value=value, expected=sim_expected)


def _amount_text(amount: np.ndarray) -> np.ndarray:
    whole = amount == np.round(amount)
    return np.where(whole, np.char.mod("%d", amount.astype(np.int64)), np.char.mod("%.2f", amount)).astype(object)


def _change_rows(sim: dict, start64: np.datetime64) -> pd.DataFrame:
    """The change log as text: one row per change, by deal, time and field; a change that lands on the
    same instant as another of its field (date-only deals keep dates only) gives way to the later one."""
    deal, code = sim["c_deal"], sim["c_field"]
    when = _iso(sim["c_time"], start64, sim["date_only"][deal])
    days = (start64.astype("datetime64[D]") + sim["c_value"].astype(np.int64)).astype(str)
    value = np.where(code == 0, _amount_text(sim["c_value"]),
                     np.where(code == 1, days, np.array(_CATEGORIES, dtype=object)[
                         np.clip(sim["c_value"], 0, 4).astype(np.int64)]))
    df = pd.DataFrame({"_deal": deal, "_time": sim["c_time"], "_code": code, "_seq": np.arange(len(deal)),
                       "deal_id": _ids(deal, sim["n"]), "changed_at": when,
                       "field": np.array(["amount", "expected_close_date", "forecast_category"], dtype=object)[code],
                       "value": value})
    df = df.sort_values(["_deal", "_time", "_code", "_seq"], kind="stable")
    df = df.drop_duplicates(["_deal", "_code", "changed_at"], keep="last")
    return df[list(CHANGE_COLUMNS)].reset_index(drop=True)


#: Reasons the sample's lost deals give, with their shares.
_LOST_REASONS = {"Price": 0.3, "Chose a competitor": 0.25, "No decision": 0.2, "No budget": 0.15, "Timing": 0.1}


def _with_changes(sim: dict, seed: int, start64: np.datetime64, end: int) -> dict:
    """``sim`` plus the change log (as text rows) and the deals' optional columns taken from its last
    values, so that each deal's last change gives its deals.csv value."""
    sim = {**sim, **_changes(sim, seed, end)}
    rows = _change_rows(sim, start64)
    last = rows.drop_duplicates(["deal_id", "field"], keep="last")
    n = sim["n"]
    ids = pd.Index(_ids(np.arange(n), n))
    expected = last[last["field"] == "expected_close_date"].set_index("deal_id")["value"].reindex(ids)
    category = last[last["field"] == "forecast_category"].set_index("deal_id")["value"].reindex(ids)
    is_open = sim["status"] == 0
    rng = np.random.default_rng([int(seed), 14])
    reason = np.array(list(_LOST_REASONS), dtype=object)[_pick(rng, n, list(_LOST_REASONS.values()))]
    sim["extra"] = {"expected_close_date": np.where(is_open, expected.fillna("").to_numpy(dtype=object), ""),
                    "forecast_category": category.fillna("").to_numpy(dtype=object),
                    "lost_reason": np.where(sim["status"] == 2, reason, "")}
    sim["change_rows"] = rows
    return sim


def _iso(minutes: np.ndarray, start: np.datetime64, date_only: np.ndarray) -> np.ndarray:
    """ISO 8601 text: ``YYYY-MM-DDTHH:MM:SS``, or ``YYYY-MM-DD`` where ``date_only``."""
    at = start + minutes.astype("timedelta64[m]")
    full = np.datetime_as_string(at.astype("datetime64[s]"), unit="s")
    if not date_only.any():
        return full.astype(object)
    short = np.datetime_as_string(at.astype("datetime64[D]"), unit="D")
    return np.where(date_only, short, full).astype(object)


def _labels(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=names)


def _parse_start(start) -> np.datetime64:
    if start is None:
        start = DEFAULT_START
    if isinstance(start, (_dt.date, pd.Timestamp)):
        start = pd.Timestamp(start).strftime("%Y-%m-%d")
    try:
        return np.datetime64(str(start), "D").astype("datetime64[m]")
    except ValueError:
        raise ArgumentError(f"start {start!r} is not a date such as 2024-10-01") from None


def _run(deals, seed, start, days, with_changes: bool = False) -> tuple[dict, np.datetime64]:
    n = int(deals)
    if n < 1:
        raise ArgumentError("deals must be at least 1")
    days = DEFAULT_DAYS if days is None else int(days)
    if days < 1:
        raise ArgumentError("days must be at least 1")
    start64 = _parse_start(start)
    sim = _simulate(n, int(seed), start64, days)
    if with_changes:
        sim = _with_changes(sim, int(seed), start64, days * 1440)
    return sim, start64


def generate(deals: int = 3000, seed: int = 7, start=None, days: int | None = None,
             with_changes: bool = False) -> tuple:
    """Generate a synthetic data set in the contract's text-ready form.

    Parameters
    ----------
    deals
        Number of deals.
    seed
        Random seed: the same seed gives the same data.
    start
        First creation date (default 2024-10-01).
    days
        Length of the creation window in days (default 730). The data ends at ``start + days``
        (the export instant): later events are not recorded, so the deals still going are open.

    with_changes
        Also generate a change log (``deal_changes.csv``: pushed and pulled-in expected close dates,
        amount edits, forecast category moves) and the deals' ``expected_close_date``,
        ``forecast_category`` and ``lost_reason`` columns. The deals and the stage history are the
        same either way (the log has its own random stream).

    Returns
    -------
    (deals, stage_history, pipeline), or with ``with_changes`` (deals, stage_history, pipeline, changes)
        ``deals`` has exactly the columns :data:`~funnelkit.contract.DEAL_COLUMNS` (plus the three
        optional ones with ``with_changes``) and
        ``stage_history`` exactly :data:`~funnelkit.contract.HISTORY_COLUMNS`. Timestamps and
        amounts are text as they would be in the CSV (empty = missing); labels are categoricals.

    Examples
    --------
    >>> d, h, p = generate(50, seed=3)
    >>> sorted(d.status.unique()) <= ["lost", "open", "won"]
    True
    """
    sim, start64 = _run(deals, seed, start, days, with_changes)
    n = sim["n"]
    deals_df = _deal_rows(sim, start64, 0, n)
    hist_df = _history_rows(sim, start64, 0, len(sim["e_deal"]))
    if with_changes:
        return deals_df, hist_df, _PIPELINE, sim["change_rows"]
    return deals_df, hist_df, _PIPELINE


_PIPELINE = Pipeline(stages=STAGES, currency="USD", name="Sample pipeline")


def _ids(codes: np.ndarray, n: int) -> np.ndarray:
    width = max(5, len(str(n)))
    return np.char.add("D", np.char.zfill((codes + 1).astype(str), width)).astype(object)


def _deal_rows(sim: dict, start64: np.datetime64, lo: int, hi: int) -> pd.DataFrame:
    """Rows ``lo:hi`` of the deals table as text (chunks keep the memory of big data sets low)."""
    cut = slice(lo, hi)
    date_only = sim["date_only"][cut]
    closed = sim["closed"][cut]
    closed_text = _iso(np.maximum(closed, 0), start64, date_only)
    closed_text[closed < 0] = ""
    amount_text = _amount_text(sim["amount"][cut])
    amount_text[sim["no_amount"][cut]] = ""
    df = pd.DataFrame({
        "deal_id": _ids(np.arange(lo, hi), sim["n"]),
        "created_at": _iso(sim["created"][cut], start64, date_only),
        "status": np.array(["open", "won", "lost"], dtype=object)[sim["status"][cut]],
        "closed_at": closed_text,
        "amount": amount_text,
        "source": _labels(sim["source"][cut], sim["src_names"]),
        "product": _labels(sim["product"][cut], sim["prod_names"]),
        "owner": _labels(sim["owner"][cut], sim["owner_names"]),
    })
    assert tuple(df.columns) == DEAL_COLUMNS
    for col, values in sim.get("extra", {}).items():
        df[col] = values[cut]
    return df


def _history_rows(sim: dict, start64: np.datetime64, lo: int, hi: int) -> pd.DataFrame:
    """Rows ``lo:hi`` of the stage history table as text."""
    e_deal = sim["e_deal"][lo:hi]
    df = pd.DataFrame({
        "deal_id": _ids(e_deal, sim["n"]),
        "stage": _labels(sim["e_stage"][lo:hi], sim.get("stage_names", list(STAGES))),
        "entered_at": _iso(sim["e_time"][lo:hi], start64, sim["date_only"][e_deal]),
    })
    assert tuple(df.columns) == HISTORY_COLUMNS
    return df


#: Rows formatted and written at a time by write_sample (bounds the memory for big data sets).
_CHUNK = 200_000


def write_sample(out, deals: int = 3000, seed: int = 7, start=None, days: int | None = None,
                 table_format: str = "csv", force: bool = False, lang: str = "en",
                 with_changes: bool = False) -> Path:
    """Write :func:`generate`'s data set to folder ``out`` and return the folder.

    Writes ``deals``, ``stage_history`` (as ``.csv``, ``.parquet`` or ``.xlsx``) and
    ``pipeline.yml``, each atomically (with ``with_changes``, also ``deal_changes``: see
    :func:`generate`). ``lang="zh"`` names the stages, sources, products and owners in
    Chinese (:data:`NAMES_ZH`; amounts in CNY). The same arguments give byte-identical CSV files. A folder
    that already holds a data set is refused unless ``force=True`` (then its files are replaced).

    Examples
    --------
    >>> import tempfile
    >>> folder = write_sample(tempfile.mkdtemp(), deals=100, seed=2)
    >>> sorted(p.name for p in folder.iterdir())
    ['deals.csv', 'pipeline.yml', 'stage_history.csv']
    """
    if table_format not in TABLE_FORMATS:
        raise ArgumentError("table_format must be csv, parquet or xlsx")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    existing = [f"{stem}.{ext}" for stem in (DEALS_FILE, HISTORY_FILE, CHANGES_FILE) for ext in TABLE_FORMATS
                if (out / f"{stem}.{ext}").exists()] + ([PIPELINE_FILE] if (out / PIPELINE_FILE).exists() else [])
    if existing and not force:
        raise FileExistsError(f"{out} already holds a data set ({', '.join(existing)}); "
                              "choose an empty folder, or pass --force to replace it")
    if lang not in LANGUAGES:
        raise ArgumentError(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    sim, start64 = _run(deals, seed, start, days, with_changes)
    pipeline = _PIPELINE
    if lang == "zh":
        sim, pipeline = _in_chinese(sim)

    def chunks(rows, total):
        """The table in chunks of _CHUNK rows (bounds the memory of big data sets)."""
        for lo in range(0, max(total, 1), _CHUNK):
            yield rows(sim, start64, lo, min(total, lo + _CHUNK))

    changes = None
    if with_changes:
        changes = chunks(lambda sim_, start_, lo, hi: sim_["change_rows"].iloc[lo:hi], len(sim["change_rows"]))
    # Without changes, write_dataset removes a change log left from an earlier --with-changes sample
    # (it would not match the new deals).
    return write_dataset(out, chunks(_deal_rows, sim["n"]), chunks(_history_rows, len(sim["e_deal"])),
                         pipeline, changes=changes, table_format=table_format,
                         comment=f"Sample pipeline written by `funnelkit sample-data` (seed {int(seed)}, "
                                 f"{int(deals)} deals).")


def _in_chinese(sim: dict) -> tuple[dict, Pipeline]:
    """The simulation with Chinese names (:data:`NAMES_ZH`) and its pipeline (amounts in CNY)."""
    names = {key: [NAMES_ZH[n] for n in sim[key]] for key in ("src_names", "prod_names", "owner_names")}
    stages = tuple(NAMES_ZH[s] for s in STAGES)
    return ({**sim, **names, "stage_names": list(stages)},
            Pipeline(stages=stages, currency="CNY", name="示例销售管道"))
