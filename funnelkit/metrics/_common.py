"""Small pieces the metric modules share: the stage column, group labels, column checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contract import DATES_ESTIMATED, NOT_SET
from ..dataset import Dataset, label_text
from ..history import DAY

__all__ = ["DAY", "NOT_SET", "LEFT_OUT", "stage_column", "group_labels", "group_label", "require_column",
           "dates_estimated"]

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

    text = column.cast("string").strip()
    return ibis.ifelse(text.fill_null("") == "", NOT_SET, text)


def require_column(ds: Dataset, column: str) -> None:
    """Raise a ValueError naming the available columns when ``column`` is not a deal column."""
    if column not in ds.deal_columns:
        raise ValueError(f"no deal column {column!r} to group by (columns: "
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
