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
import yaml

from .contract import DEAL_COLUMNS, DEALS_FILE, HISTORY_COLUMNS, HISTORY_FILE, PIPELINE_FILE, Pipeline
from .io import atomic_path, atomic_write_text

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
        raise ValueError(f"start {start!r} is not a date such as 2024-10-01") from None


def _run(deals, seed, start, days) -> tuple[dict, np.datetime64]:
    n = int(deals)
    if n < 1:
        raise ValueError("deals must be at least 1")
    days = DEFAULT_DAYS if days is None else int(days)
    if days < 1:
        raise ValueError("days must be at least 1")
    start64 = _parse_start(start)
    return _simulate(n, int(seed), start64, days), start64


def generate(deals: int = 3000, seed: int = 7, start=None,
             days: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Pipeline]:
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

    Returns
    -------
    (deals, stage_history, pipeline)
        ``deals`` has exactly the columns :data:`~funnelkit.contract.DEAL_COLUMNS` and
        ``stage_history`` exactly :data:`~funnelkit.contract.HISTORY_COLUMNS`. Timestamps and
        amounts are text as they would be in the CSV (empty = missing); labels are categoricals.

    Examples
    --------
    >>> d, h, p = generate(50, seed=3)
    >>> sorted(d.status.unique()) <= ["lost", "open", "won"]
    True
    """
    sim, start64 = _run(deals, seed, start, days)
    n = sim["n"]
    deals_df = _deal_rows(sim, start64, 0, n)
    hist_df = _history_rows(sim, start64, 0, len(sim["e_deal"]))
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
    amount = sim["amount"][cut]
    whole = amount == np.round(amount)
    amount_text = np.where(whole, np.char.mod("%d", amount.astype(np.int64)),
                           np.char.mod("%.2f", amount)).astype(object)
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
                 table_format: str = "csv", force: bool = False, lang: str = "en") -> Path:
    """Write :func:`generate`'s data set to folder ``out`` and return the folder.

    Writes ``deals``, ``stage_history`` (as ``.csv``, ``.parquet`` or ``.xlsx``) and
    ``pipeline.yml``, each atomically. ``lang="zh"`` names the stages, sources, products and owners in
    Chinese (:data:`NAMES_ZH`; amounts in CNY). The same arguments give byte-identical CSV files. A folder
    that already holds a data set is refused unless ``force=True`` (then its files are replaced).

    Examples
    --------
    >>> import tempfile
    >>> folder = write_sample(tempfile.mkdtemp(), deals=100, seed=2)
    >>> sorted(p.name for p in folder.iterdir())
    ['deals.csv', 'pipeline.yml', 'stage_history.csv']
    """
    if table_format not in ("csv", "parquet", "xlsx"):
        raise ValueError("table_format must be csv, parquet or xlsx")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    existing = [f"{stem}.{ext}" for stem in (DEALS_FILE, HISTORY_FILE) for ext in ("csv", "parquet", "xlsx")
                if (out / f"{stem}.{ext}").exists()] + (["pipeline.yml"] if (out / "pipeline.yml").exists() else [])
    if existing and not force:
        raise FileExistsError(f"{out} already holds a data set ({', '.join(existing)}); "
                              "choose an empty folder, or pass --force to replace it")
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    out.mkdir(parents=True, exist_ok=True)
    sim, start64 = _run(deals, seed, start, days)
    pipeline = _PIPELINE
    if lang == "zh":
        sim, pipeline = _in_chinese(sim)
    n = sim["n"]
    tables = ((DEALS_FILE, _deal_rows, n), (HISTORY_FILE, _history_rows, len(sim["e_deal"])))
    for stem, rows, total in tables:
        target = out / f"{stem}.{table_format}"
        # Never leave a table of another format beside the new one (the loader prefers .csv).
        for other in ("csv", "parquet", "xlsx"):
            stale = out / f"{stem}.{other}"
            if other != table_format and stale.exists():
                stale.unlink()
        with atomic_path(target, suffix=f".{table_format}") as tmp:
            if table_format == "csv":
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    for lo in range(0, total, _CHUNK):
                        rows(sim, start64, lo, min(total, lo + _CHUNK)).to_csv(
                            fh, index=False, header=lo == 0, lineterminator="\n")
            elif table_format == "parquet":
                rows(sim, start64, 0, total).astype(str).to_parquet(tmp, index=False)
            else:
                rows(sim, start64, 0, total).astype(str).to_excel(tmp, index=False)
    text = ("# Sample pipeline written by `funnelkit sample-data` "
            f"(seed {int(seed)}, {int(deals)} deals).\n"
            + yaml.safe_dump(pipeline.to_yaml_dict(), sort_keys=False, allow_unicode=True))
    atomic_write_text(out / PIPELINE_FILE, text)
    return out


def _in_chinese(sim: dict) -> tuple[dict, Pipeline]:
    """The simulation with Chinese names (:data:`NAMES_ZH`) and its pipeline (amounts in CNY)."""
    names = {key: [NAMES_ZH[n] for n in sim[key]] for key in ("src_names", "prod_names", "owner_names")}
    stages = tuple(NAMES_ZH[s] for s in STAGES)
    return ({**sim, **names, "stage_names": list(stages)},
            Pipeline(stages=stages, currency="CNY", name="示例销售管道"))
