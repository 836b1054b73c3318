"""The loaded data set: deals, normalised stage history, pipeline settings, and the derived visits.

The visit table (one row per stage visit) is the engine's (:func:`funnelkit.engine.views.visits`),
fetched once per data set as a frame on request (the metrics read the engine's visits themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, TypeVar

import difflib
import warnings

import numpy as np
import pandas as pd

from .contract import Pipeline
from .errors import ArgumentError, FunnelkitError, NoMatchWarning, UnknownColumnError
from .validation import ValidationReport

__all__ = ["Dataset", "MixedCurrencyError", "empty_changes", "label_text", "label_counts"]


def empty_changes() -> pd.DataFrame:
    """The change log of a data set without ``deal_changes.csv``: no rows, the loaded columns."""
    return pd.DataFrame({"deal_id": pd.Series([], dtype=object),
                         "changed_at": pd.Series([], dtype="datetime64[ns]"),
                         "field": pd.Series([], dtype=object), "value": pd.Series([], dtype=object),
                         "amount": pd.Series([], dtype=float),
                         "date": pd.Series([], dtype="datetime64[ns]")})

T = TypeVar("T")


class MixedCurrencyError(FunnelkitError, ValueError):
    """Amounts in more than one currency would have been added together."""


def label_text(values: pd.Series, missing: str = "") -> pd.Series:
    """A column's values as text labels (object dtype), ``missing`` where a value is missing.

    A categorical column is converted category by category and spread by its codes, so memory is
    one pointer per row whatever the labels' length (pandas 2's ``astype(str)`` builds a fixed-width
    array: rows x the longest label x 4 bytes, 74 GiB for 20,000 rows and one 1-MB label).

    Examples
    --------
    >>> label_text(pd.Series(pd.Categorical(["Ann", None, "Bo"])), missing="(not set)").tolist()
    ['Ann', '(not set)', 'Bo']
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        text = np.array([str(c) for c in values.cat.categories] + [missing], dtype=object)
        return pd.Series(text[values.cat.codes.to_numpy()], index=values.index, name=values.name, dtype=object)
    # Not categorical: object -> str converts cell by cell (no fixed-width array on pandas 2 or 3).
    known = values.notna().to_numpy()
    out = np.full(len(values), missing, dtype=object)
    out[known] = values[known].astype(object).astype(str).to_numpy(dtype=object)
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def label_counts(values: pd.Series) -> pd.Series:
    """How many rows carry each label, most first, labels as text (counted on codes, not on text).

    Examples
    --------
    >>> label_counts(pd.Series(pd.Categorical(["b", "a", "b"], categories=["a", "b", "c"]))).to_dict()
    {'b': 2, 'a': 1}
    """
    counts = values.value_counts(sort=True)
    counts = counts[counts > 0]
    counts.index = label_text(pd.Series(counts.index, dtype=values.dtype)).to_numpy()
    return counts


@dataclass(eq=False)
class Dataset:
    """A validated data set.

    Attributes
    ----------
    deals
        One row per deal: ``deal_id`` (str), ``created_at``/``closed_at`` (naive datetimes, UTC where
        the input had a zone), ``status`` (categorical open/won/lost), ``amount`` (float, NaN =
        unknown), ``source``/``product``/``owner`` (categorical; empty shown as ``(not set)``), and
        any further input columns as text.
    stage_history
        One row per stage entry after normalisation: ``deal_id``, ``stage`` (ordered categorical),
        ``stage_index`` (0 = first stage), ``entered_at``; sorted by deal, time, stage order.
    pipeline
        The settings from ``pipeline.yml``.
    deal_changes
        The optional change log (``deal_changes.csv``), one row per change: ``deal_id``,
        ``changed_at``, ``field`` (amount / expected_close_date / forecast_category), ``value``
        (the text as given, trimmed), ``amount`` (float, NaN unless an amount change or unknown) and
        ``date`` (NaT unless an expected-close-date change); sorted by deal, time, field. Empty
        when the data set has no change log (:func:`funnelkit.changes.known_at` reads it).
    report
        The validation report (accounting, normalisations, problems in lenient mode).
    """

    deals: pd.DataFrame
    stage_history: pd.DataFrame
    pipeline: Pipeline
    report: ValidationReport = field(default_factory=lambda: ValidationReport(path=""))
    name: str = "Sales pipeline"
    path: Path | None = None
    deal_changes: pd.DataFrame = field(default_factory=lambda: empty_changes())

    @property
    def stages(self) -> list[str]:
        return list(self.pipeline.stages)

    @property
    def deal_columns(self) -> list[str]:
        """The names of the deal columns."""
        return [str(c) for c in self.deals.columns]

    @property
    def currency(self) -> str:
        """The currency of the amounts (the one in the deals' ``currency`` column, if any)."""
        found = self.currencies
        return found[0] if len(found) == 1 else self.pipeline.currency

    @property
    def currencies(self) -> list[str]:
        """Currencies present among the deals: the optional ``currency`` column, else the pipeline's."""
        if "currency" not in self.deals.columns or self.deals.empty:
            return [self.pipeline.currency]
        return sorted(self.deals["currency"].astype(str).unique().tolist())

    def require_single_currency(self, what: str = "this metric") -> str:
        """Return the one currency of the amounts, or raise :class:`MixedCurrencyError`.

        Amounts in different currencies are never added together.
        """
        found = self.currencies
        if len(found) <= 1:
            return found[0] if found else self.pipeline.currency
        counts = self.deals["currency"].astype(str).value_counts()
        listed = ", ".join(f"{c}: {n} deals" for c, n in counts.items())
        raise MixedCurrencyError(
            f"{what} adds amounts, but the deals are in {len(found)} currencies ({listed}). "
            "Amounts in different currencies are never added together: slice to one currency with "
            f"ds.filter(currency={found[0]!r}) (CLI: --currency {found[0]}), or import with a rates "
            "table (funnelkit import ... --rates RATES.csv) to convert them to one currency.")

    @cached_property
    def visits(self) -> pd.DataFrame:
        """One row per stage visit over the whole history (not cut at any as-of date).

        Columns: ``deal_id``, ``stage``, ``stage_index``, ``entered_at``, ``next_entered_at`` and
        ``next_stage_index`` (the deal's next entry; NaT / -1 for its last visit), ``is_last``,
        ``deal_row`` (row position in :attr:`deals`), and the deal's ``created_at``, ``closed_at``,
        ``status`` and ``dates_estimated`` (bool, see :attr:`dates_estimated`). In stage-history
        order. The rows of the engine's visits (:func:`funnelkit.engine.views.visits`, the one
        definition of a visit), fetched once per data set, for analysis in pandas. No metric reads
        it: at 1M deals it is 2.45M rows, several hundred MB as a frame; the landing forecast and
        lost reasons fetch the few engine columns they need as arrays
        (:func:`funnelkit.engine.tables.to_arrays`).
        """
        from .engine.tables import tables_of, to_frame

        e = tables_of(self).visits
        got = to_frame(e.select("deal_row", "stage_index", "entered_at", "next_entered_at", "next_stage_index")
                       .order_by(["deal_row", "entered_at", "stage_index"]))
        # In stage-history order: the deals in the order their entries come there (each deal's entries
        # are consecutive), each deal's visits in entry order as fetched.
        ids = self.stage_history["deal_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
        pos = pd.Series(np.arange(len(self.deals)), index=self.deals["deal_id"].to_numpy())
        rank = np.zeros(len(self.deals), dtype="int64")
        rank[pos.reindex(ids[starts]).to_numpy()] = np.arange(len(starts))
        got = got.iloc[np.argsort(rank[got["deal_row"].to_numpy(dtype="int64")], kind="stable")]
        codes = got["stage_index"].to_numpy(dtype="int64")
        nxt = got["next_stage_index"]
        v = pd.DataFrame({
            "deal_id": self.deals["deal_id"].to_numpy()[got["deal_row"].to_numpy(dtype="int64")],
            "stage": pd.Categorical.from_codes(codes, categories=self.stages, ordered=True),
            "stage_index": codes.astype(self.stage_history["stage_index"].dtype),
            "entered_at": got["entered_at"].to_numpy(dtype="datetime64[ns]"),
            "next_entered_at": got["next_entered_at"].to_numpy(dtype="datetime64[ns]"),
            "next_stage_index": nxt.fillna(-1).to_numpy().astype("int16"),
            "is_last": nxt.isna().to_numpy(),
            "deal_row": got["deal_row"].to_numpy(dtype="int64"),
        })
        for col in ("created_at", "closed_at"):
            v[col] = self.deals[col].to_numpy()[v["deal_row"].to_numpy()]
        # Spread the deals' status codes, not their strings (millions of visits).
        status = pd.Categorical(self.deals["status"], categories=["open", "won", "lost"])
        v["status"] = pd.Categorical.from_codes(status.codes[v["deal_row"].to_numpy()],
                                                categories=["open", "won", "lost"])
        v["dates_estimated"] = self.dates_estimated[v["deal_row"].to_numpy()]
        return v

    @property
    def dates_estimated(self) -> np.ndarray:
        """Per deal (row of :attr:`deals`): True where the optional ``dates_estimated`` column flags
        the deal's dates as not measuring its duration (such deals count, but every duration metric
        leaves them out and says how many); all False without the column."""
        if "dates_estimated" not in self.deals.columns:
            return np.zeros(len(self.deals), dtype=bool)
        return self.deals["dates_estimated"].fillna(False).to_numpy(dtype=bool)

    def in_currency(self, currency: str) -> "Dataset":
        """The deals in one currency (code in any case); a clear error when there are none.

        Works with or without the optional ``currency`` column (without it, every deal is in the
        pipeline's currency).

        Examples
        --------
        >>> eur = ds.in_currency("eur")                                    # doctest: +SKIP
        """
        code = str(currency).strip().upper()
        present = self.currencies
        if code not in present:
            raise ArgumentError(f"no deals in {code}: the data set's deals are in {', '.join(present)}")
        if "currency" not in self.deals.columns:
            return self
        return self.filter(currency=code)

    def derived(self, key: str, compute: Callable[[], T]) -> T:
        """A value derived from this data set, computed on first use and kept until :meth:`refresh`.

        The one cache of derived tables: modules that derive something from a data set (as-of
        views, the forecast's visit arrays, ...) keep it here under a key of their own, never in
        attributes of their own.

        Examples
        --------
        >>> import funnelkit as fk
        >>> ds = fk.load("data/sample")
        >>> ds.derived("won_count", lambda: int((ds.deals["status"] == "won").sum()))
        577
        >>> ds.derived("won_count", lambda: -1)          # kept: not computed again
        577
        """
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def refresh(self) -> "Dataset":
        """Forget every derived table (visits and whatever :meth:`derived` keeps) after editing
        ``deals`` or ``stage_history`` in place. Treating a Dataset as read-only (derive new ones
        with :meth:`filter` or :func:`dataclasses.replace`) never needs this."""
        self.__dict__.pop("visits", None)
        self.__dict__.pop("_derived", None)
        return self

    def filter(self, **equals) -> "Dataset":
        """A new Dataset restricted to deals whose columns equal the given values (lists allowed).

        A column the deals do not have raises :class:`~funnelkit.errors.UnknownColumnError` listing
        the columns they have. A value that no deal has (in the whole data set, e.g. a typo) gives a
        :class:`~funnelkit.errors.NoMatchWarning` naming it and the closest values that exist; the
        result is still the exact filter (empty if nothing matches). ``None`` means "no filter".

        Examples
        --------
        >>> import warnings, funnelkit as fk
        >>> ds = fk.load("data/sample")
        >>> len(ds.filter(source="Referrals", owner=["Hugo Silva", "Grace Kim"]).deals)
        42
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     len(ds.filter(source="Referral").deals)
        0
        >>> print(caught[0].message)    # doctest: +ELLIPSIS
        filter: no deal has source 'Referral' (closest: 'Referrals'; values: 'Backlinks', ...)
        >>> ds.filter(sauce="Referrals")    # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        funnelkit.errors.UnknownColumnError: filter: the deals have no column 'sauce' (columns: deal_id, ...)
        """
        mask = pd.Series(True, index=self.deals.index)
        for col, want in equals.items():
            if want is None:
                continue
            if col not in self.deals.columns:
                raise UnknownColumnError(f"filter: the deals have no column {col!r} (columns: "
                                         + ", ".join(map(str, self.deals.columns)) + ")")
            values = list(want) if isinstance(want, (list, tuple, set, frozenset)) else [want]
            hit = self.deals[col].isin(values)
            _warn_unmatched(col, values, self.deals[col], hit)
            mask &= hit
        deals = self.deals[mask].reset_index(drop=True)
        hist = self.stage_history[self.stage_history["deal_id"].isin(deals["deal_id"])].reset_index(drop=True)
        changes = self.deal_changes[self.deal_changes["deal_id"].isin(deals["deal_id"])].reset_index(drop=True)
        return Dataset(deals=deals, stage_history=hist, pipeline=self.pipeline, report=self.report,
                       name=self.name, path=self.path, deal_changes=changes)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: {len(self.deals)} deals, {len(self.stage_history)} stage "
                f"entries, stages {self.stages}, currency {self.currency})")


def _warn_unmatched(column: str, values: list, present: pd.Series, hit: pd.Series) -> None:
    """Warn (NoMatchWarning) about each filter value that no deal has in ``column``."""
    if hit.all() and len(values) == 1:
        return
    found = set(present[hit].astype(str).unique()) if hit.any() else set()
    missing = [v for v in values if str(v) not in found]
    if not missing:
        return
    existing = sorted(present.dropna().astype(str).unique())
    for value in missing:
        close = difflib.get_close_matches(str(value), existing, n=3, cutoff=0.6)
        hint = f"closest: {', '.join(map(repr, close))}; " if close else ""
        listed = ", ".join(map(repr, existing[:20])) + (", ..." if len(existing) > 20 else "")
        warnings.warn(f"filter: no deal has {column} {value!r} ({hint}values: {listed})",
                      NoMatchWarning, stacklevel=3)

