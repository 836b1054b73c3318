"""The public API's promises: a period in every form, clear refusals, one error and one warning base,
Dataset.filter's checks, a warning for a period with no data, Dataset's one derived-table cache."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import errors
from funnelkit.cli import main
from funnelkit.period import ACCEPTED_PERIODS, Period, as_period

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- periods

@pytest.mark.parametrize("given, start, end, label", [
    ("2026Q2", "2026-04-01", "2026-06-30", "2026Q2"),
    ("2026-q2", "2026-04-01", "2026-06-30", "2026Q2"),
    ("2026-05", "2026-05-01", "2026-05-31", "2026-05"),
    ("2024-02", "2024-02-01", "2024-02-29", "2024-02"),          # leap year
    ("2026", "2026-01-01", "2026-12-31", "2026"),
    (2026, "2026-01-01", "2026-12-31", "2026"),
    (("2026-04-03", "2026-04-09"), "2026-04-03", "2026-04-09", "2026-04-03 to 2026-04-09"),
    ((dt.date(2026, 4, 3), pd.Timestamp("2026-04-09 17:00")), "2026-04-03", "2026-04-09", None),
    (("2026-04", "2026-06"), "2026-04-01", "2026-06-30", None),   # months count whole
    (("2017Q3", "2017Q3"), "2017-07-01", "2017-09-30", None),     # not one day
    (["2025", "2026Q1"], "2025-01-01", "2026-03-31", None),
])
def test_every_period_form(given, start, end, label):
    p = as_period(given)
    assert (str(p.start.date()), str(p.end.date())) == (start, end)
    assert p.as_of == pd.Timestamp(end) + pd.Timedelta(days=1)
    if label:
        assert p.label == label


def test_a_period_passes_through_unchanged():
    p = Period.quarter("2026Q2", as_of="2026-05-15")
    assert as_period(p) is p


@pytest.mark.parametrize("bad", ["June 2017", "", "  ", None, 3.5, "2026-05-03", "last quarter", ("2026",),
                                 ("2026-01-01", "2026-02-01", "2026-03-01"), {"start": "2026-01-01"}, True])
def test_anything_else_is_refused_listing_the_accepted_forms(bad):
    with pytest.raises(errors.ArgumentError) as exc:
        as_period(bad)
    assert ACCEPTED_PERIODS in str(exc.value)
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("start, end, message", [
    ("June 2017", "Aug 2017", "period start 'June 2017' is not a date funnelkit reads"),
    ("2017-06-01", "01/08/2017", "period end '01/08/2017' is not a date funnelkit reads"),
    ("", "2017-08-01", "period start is empty"),
    ("2017-06-01", None, "period end is empty"),
    ("2017-06-01", pd.NaT, "period end is empty"),
    ("2017-09", "2017-06", "period end 2017-06-30 is before its start 2017-09-01"),
    ("2017-13", "2017-14", "has no month 13"),
])
def test_period_refuses_ambiguous_or_empty_ends(start, end, message):
    with pytest.raises(errors.ArgumentError, match=message):
        Period(start, end)


def test_period_as_of_refuses_what_it_cannot_read():
    with pytest.raises(errors.ArgumentError, match="'next week' is not a date"):
        Period("2026-01-01", "2026-01-31", as_of="next week")
    assert Period("2026-01-01", "2026-01-31", as_of="2026-02-01T02:00+02:00").as_of == pd.Timestamp("2026-02-01")


def test_previous_period_of_each_kind():
    assert as_period("2026Q1").previous().label == "2025Q4"
    assert as_period("2026-03").previous().label == "2026-02"
    assert as_period("2026-03").previous().days == 28
    assert as_period("2026").previous().label == "2025"
    assert as_period(("2026-03-10", "2026-03-19")).previous().start == pd.Timestamp("2026-02-28")


def _period_metrics():
    """Every public metric (and chart helper) that takes ``(ds, period)``."""
    from funnelkit import views
    out = []
    for name in fk.metrics.__all__:
        f = getattr(fk.metrics, name)
        if inspect.isfunction(f) and list(inspect.signature(f).parameters)[:2] == ["ds", "period"]:
            out.append((name, f))
    out += [("plot.visit_days", fk.plot.visit_days), ("views.funnel_chart", views.funnel_chart)]
    return out


def _same(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif hasattr(a, "figure") or type(a).__name__ in ("Figure", "Axes"):
        pass   # a chart: drawn without error from both forms
    elif hasattr(a, "to_dict"):
        assert a.to_dict() == b.to_dict()
    else:
        assert a == b


@pytest.mark.parametrize("name, metric", _period_metrics(), ids=[n for n, _ in _period_metrics()])
def test_every_metric_takes_every_period_form(sample_ds, name, metric):
    extra = {"target": 1_000_000.0} if name in ("target_plan", "coverage") else {}
    if name == "forecast_categories":          # needs the CRM's forecast_category column
        deals = sample_ds.deals.assign(forecast_category=np.resize(["Commit", "Best case", "Pipeline"],
                                                                   len(sample_ds.deals)))
        sample_ds = dataclasses.replace(sample_ds, deals=deals)
    q = metric(sample_ds, Period.quarter("2026Q2"), **extra)
    _same(q, metric(sample_ds, "2026Q2", **extra))
    # A (start, end) pair is labelled by its dates and its previous period is the same length
    # before it (not "the previous quarter"): results that name periods, or learn from the
    # previous periods, differ there.
    if name not in ("metrics_summary", "pacing", "coverage", "landing_by_week"):
        _same(q, metric(sample_ds, ("2026-04", "2026-06"), **extra))
    with pytest.raises(errors.ArgumentError, match="cannot use 'Q2'"):
        metric(sample_ds, "Q2", **extra)
    import matplotlib.pyplot as plt
    plt.close("all")


def test_the_issue_s_first_call_works(sample_ds):
    # `funnel(ds, "2017Q3")` failed with AttributeError: 'str' object has no attribute 'as_of'.
    f = fk.metrics.funnel(sample_ds, "2026Q2")
    pd.testing.assert_frame_equal(f, fk.metrics.funnel(sample_ds, Period.quarter("2026Q2")))
    assert f["reached"].iloc[0] == ((sample_ds.deals["created_at"] >= "2026-04-01")
                                    & (sample_ds.deals["created_at"] < "2026-07-01")).sum()


# ----------------------------------------------------------------------------- no data

def test_a_period_with_no_data_warns(sample_ds):
    with pytest.warns(errors.NoDataWarning, match=r"no data in 2030Q1: .* \(the data runs from 2024-10-01 "
                                                  r"to 2026-09-30\); its numbers are empty, not zero"):
        assert fk.metrics.win_rate(sample_ds, "2030Q1") is None
    with pytest.warns(errors.NoDataWarning, match="no data in 2023"):
        assert fk.metrics.funnel(sample_ds, "2023")["reached"].sum() == 0


def test_a_period_with_data_does_not_warn(sample_ds):
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.FunnelkitWarning)
        fk.metrics.funnel(sample_ds, "2026-05")
        fk.metrics.win_rate(sample_ds, ("2024-10-01", "2024-10-01"))   # the first day of the data


def test_no_data_is_judged_as_seen_at_as_of(sample_ds):
    # Events after as_of are not seen: a period looked at before it began has no data yet.
    with pytest.warns(errors.NoDataWarning, match="no data in 2026Q2"):
        fk.metrics.win_rate(sample_ds, Period.quarter("2026Q2", as_of="2026-03-01"))


# ----------------------------------------------------------------------------- filter

def test_filter_names_an_unknown_column(sample_ds):
    with pytest.raises(errors.UnknownColumnError) as exc:
        sample_ds.filter(prodcut="Set")
    text = str(exc.value)
    assert text.startswith("filter: the deals have no column 'prodcut' (columns: deal_id, created_at")
    assert "product" in text and "owner" in text
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, ValueError)


def test_filter_says_when_a_value_matches_no_deal(sample_ds):
    with pytest.warns(errors.NoMatchWarning, match=r"no deal has source 'Referral' \(closest: 'Referrals'"):
        out = sample_ds.filter(source="Referral")
    assert len(out.deals) == 0 and len(out.stage_history) == 0
    # in a list, only the value that matches nothing is named; the others still filter
    with pytest.warns(errors.NoMatchWarning, match="owner 'Nobody'") as caught:
        out = sample_ds.filter(owner=["Grace Kim", "Nobody"])
    assert len(caught) == 1
    assert len(out.deals) == (sample_ds.deals["owner"] == "Grace Kim").sum() == 344


def test_filter_with_known_values_is_silent(sample_ds):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sample_ds.filter(source="Referrals", product=None)
    assert len(out.deals) == 220


# ----------------------------------------------------------------------------- errors

def test_every_error_class_has_the_one_base_and_keeps_its_old_one():
    from funnelkit.importers.common import ImportProblem
    from funnelkit.metrics.forecast import NotEnoughHistory
    from funnelkit.report import ReportError
    for cls, old in [(fk.DataError, ValueError), (fk.MixedCurrencyError, ValueError),
                     (NotEnoughHistory, ValueError), (ImportProblem, ValueError),
                     (ReportError, RuntimeError), (errors.ArgumentError, ValueError),
                     (errors.UnknownColumnError, KeyError)]:
        assert issubclass(cls, fk.FunnelkitError) and issubclass(cls, old), cls
    assert issubclass(errors.TooLittleDataWarning, fk.FunnelkitWarning)
    assert issubclass(errors.TooLittleDataWarning, RuntimeWarning)   # what it was before


def test_every_exception_class_in_the_package_derives_from_the_base():
    found = []
    for path in (ROOT / "funnelkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                if any(b.endswith(("Error", "Exception", "Warning")) for b in bases) or \
                        node.name.endswith(("Error", "Warning")):
                    found.append(node.name)
                    obj = _class(path, node.name)
                    base = fk.FunnelkitWarning if issubclass(obj, Warning) else fk.FunnelkitError
                    assert issubclass(obj, base), f"{path.name}: {node.name}"
    assert {"DataError", "MixedCurrencyError", "NotEnoughHistory", "ReportError", "ImportProblem"} <= set(found)


def _class(path: Path, name: str):
    import importlib
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return getattr(importlib.import_module(module), name)


def test_the_cli_catches_the_base(sample_path, capsys):
    code = main(["metrics", str(sample_path), "--start", "June 2017", "--end", "2017-08-31"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("funnelkit metrics: period start 'June 2017' is not a date funnelkit reads")
    assert "Traceback" not in err


def test_the_cli_does_not_hide_programming_errors(monkeypatch, sample_path):
    # Only funnelkit's errors and file-system errors become messages; a bug keeps its traceback.
    import funnelkit.cli as cli
    monkeypatch.setitem(cli.COMMANDS, "validate", lambda args: [][1])
    with pytest.raises(IndexError):
        main(["validate", str(sample_path)])


# ----------------------------------------------------------------------------- structure

def test_only_dataset_writes_its_cache():
    offenders = []
    for path in (ROOT / "funnelkit").rglob("*.py"):
        if path.name != "dataset.py" and "__dict__" in path.read_text(encoding="utf-8"):
            offenders.append(path.name)
    assert offenders == []


def test_derived_tables_are_kept_until_refresh():
    ds = fk.load(ROOT / "data" / "sample")
    calls = []
    assert ds.derived("n", lambda: calls.append(1) or len(ds.deals)) == 3000
    assert ds.derived("n", lambda: calls.append(1) or -1) == 3000 and calls == [1]
    fk.metrics.stage_flow(ds, "2026Q2")          # fills the as-of views through ds.derived
    ds.deals = ds.deals.iloc[:10]
    ds.refresh()
    assert ds.derived("n", lambda: len(ds.deals)) == 10
    assert "visits" not in ds.__dict__


def test_no_module_imports_another_modules_private_name():
    offenders = []
    for path in (ROOT / "funnelkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module != "_common" \
                    and not (node.module or "").endswith("._common"):
                # "_" is gettext's function (funnelkit.i18n exports it: the convention translators' tools read)
                private = [a.name for a in node.names if a.name.startswith("_") and a.name not in ("__version__", "_")]
                if private:
                    offenders.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}{node.module} "
                                     f"import {', '.join(private)}")
    assert offenders == []
