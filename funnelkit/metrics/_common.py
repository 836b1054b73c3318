"""Small pieces the metric modules share: the stage column, group labels, column checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contract import DATES_ESTIMATED, NOT_SET
from ..dataset import Dataset, label_text
from ..errors import UnknownColumnError
from ..history import DAY

__all__ = ["DAY", "NOT_SET", "LEFT_OUT", "NEVER", "stage_column", "group_labels",
           "group_label", "require_column", "dates_estimated", "as_ns", "logit", "expit", "needs_simulation",
           "bet_totals"]

#: A missing time (NaT) as int64 nanoseconds: after every instant.
NEVER = np.iinfo(np.int64).max

#: ``attrs`` key of a duration table: how many deals flagged ``dates_estimated`` it leaves out.
LEFT_OUT = "left_out_dates_estimated"


def stage_column(ds: Dataset, codes: np.ndarray | None = None) -> pd.Categorical:
    """The pipeline stages as an ordered Categorical (all of them in order, or the given codes)."""
    codes = np.arange(len(ds.stages)) if codes is None else codes
    return pd.Categorical.from_codes(np.asarray(codes, dtype="int64"), categories=ds.stages, ordered=True)


def group_labels(values: pd.Series) -> pd.Series:
    """Text labels for grouping deals by a column: missing or empty values become ``(not set)``.

    Object dtype, built from the categorical codes where the column has them: memory is one pointer
    per row, never rows x the longest label (see :func:`funnelkit.dataset.label_text`).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        return label_text(values, missing=NOT_SET)
    text = label_text(values).str.strip()
    return text.where(text.ne(""), NOT_SET).astype(object)


def group_label(column):
    """:func:`group_labels` on the engine: an Ibis column as trimmed text, ``(not set)`` where
    missing or empty."""
    import ibis

    from ..engine.checks import trimmed_text

    text = trimmed_text(column)
    return ibis.ifelse(text.fill_null("") == "", NOT_SET, text)


def require_column(ds: Dataset, column: str) -> None:
    """Raise :class:`UnknownColumnError` naming the deal columns when ``column`` is not one of them."""
    if column not in ds.deal_columns:
        raise UnknownColumnError(f"no deal column {column!r} to group by (columns: "
                                 f"{', '.join(map(str, ds.deal_columns))})")


def dates_estimated(table):
    """Per row of a deals or visits table: True where the deal is flagged ``dates_estimated`` (its
    dates do not measure a duration: every duration metric leaves it out and says how many).

    ``table`` is a pandas DataFrame (a numpy bool array comes back) or an engine table (Ibis: a
    boolean column expression comes back). Missing flag or column: not flagged.

    Examples
    --------
    >>> import pandas as pd
    >>> dates_estimated(pd.DataFrame({"dates_estimated": [True, None, False]})).tolist()
    [True, False, False]
    """
    if isinstance(table, pd.DataFrame):
        if DATES_ESTIMATED not in table.columns:
            return np.zeros(len(table), dtype=bool)
        return table[DATES_ESTIMATED].fillna(False).to_numpy(dtype=bool)
    from ..engine.views import dates_estimated as on_engine

    return on_engine(table)


def as_ns(values, missing: int = NEVER) -> np.ndarray:
    """datetime64 values as int64 nanoseconds, NaT replaced by ``missing`` (default: after every
    instant).

    >>> as_ns(pd.to_datetime(["1970-01-01 00:00:01", None]), missing=-1).tolist()
    [1000000000, -1]
    """
    arr = np.asarray(values, dtype="datetime64[ns]")
    out = arr.view("int64").copy()
    out[np.isnat(arr)] = missing
    return out


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities (clipped to 1e-9 .. 1 - 1e-9, so 0 and 1 stay finite)."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def expit(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`logit`.

    >>> float(expit(logit(np.array(0.25))))
    0.25
    """
    return 1.0 / (1.0 + np.exp(-x))


def needs_simulation(a: np.ndarray, p: np.ndarray, up_to: int) -> bool:
    """True when the sum of independent bets (amounts ``a`` won with probabilities ``p``) must be
    simulated: ``up_to`` bets or fewer, or a few of them dominating its spread (the normal
    approximation needs many small bets).

    >>> a, p = np.ones(100), np.full(100, 0.5)          # 100 equal bets: none dominates
    >>> needs_simulation(a, p, up_to=50), needs_simulation(a, p, up_to=100)
    (False, True)
    >>> needs_simulation(np.array([1.0] * 99 + [100.0]), p, up_to=50)   # one bet dominates
    True
    """
    spread = a * a * p * (1 - p)
    return len(a) <= up_to or bool(spread.max() > 0.05 * spread.sum())


def bet_totals(rng: np.random.Generator, a: np.ndarray, p: np.ndarray, simulations: int) -> np.ndarray:
    """``simulations`` draws of the sum of independent bets: amount ``a[i]`` won with probability
    ``p[i]`` (drawn in chunks of at most ~2 million uniform numbers).

    >>> bet_totals(np.random.default_rng(0), np.array([10.0, 5.0]), np.array([1.0, 0.0]), 3).tolist()
    [10.0, 10.0, 10.0]
    """
    totals = np.empty(simulations)
    chunk = max(1, 2_000_000 // len(a))
    for start in range(0, simulations, chunk):
        n = min(chunk, simulations - start)
        totals[start:start + n] = (rng.random((n, len(a))) < p) @ a
    return totals
