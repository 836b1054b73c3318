"""targets.csv: validation with named problems, and which target a period gets."""

from __future__ import annotations

import pytest

import funnelkit as fk
from funnelkit.targets import owner_targets, read_targets, target_for, targets_of
from funnelkit.validation import DataError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_targets_read_with_periods_and_owners(tmp_path):
    t = read_targets(_write(tmp_path / "targets.csv",
                            "period,owner,target\n2026Q2,,900000\n2026Q2,Ann,\"300,000\"\n2026-05,,250000\n2026,Bo,1e6\n"))
    q2 = fk.Period.quarter("2026Q2")
    assert target_for(t, q2) == 900000.0
    assert target_for(t, q2, "Ann") == 300000.0
    assert owner_targets(t, q2) == {"Ann": 300000.0}
    assert target_for(t, fk.Period("2026-05-01", "2026-05-31")) == 250000.0
    assert target_for(t, fk.Period("2026-01-01", "2026-12-31"), "Bo") == 1e6
    assert target_for(t, fk.Period.quarter("2026Q3")) is None


def test_every_problem_is_named_with_line_column_value_and_reason(tmp_path):
    path = _write(tmp_path / "targets.csv",
                  "period,owner,target\nQ2 2026,,5\n2026Q2,,\n2026Q2,Ann,lots\n2026Q3,,-5\n2026-13,,1\n2026Q3,,7\n")
    with pytest.raises(DataError) as err:
        read_targets(path)
    text = [str(p).replace(str(path), "targets.csv") for p in err.value.problems]
    assert all(str(p).startswith(str(path)) for p in err.value.problems)   # the file named in full
    assert text == [
        "targets.csv, line 2, column 'period', value 'Q2 2026': not a period: write a quarter 2026Q2, a month 2026-05 or a year 2026",
        "targets.csv, line 3, column 'target', value empty: empty: every row needs a target amount",
        "targets.csv, line 4, column 'target', value 'lots': not a number",
        "targets.csv, line 5, column 'target', value '-5': negative: a target is an amount to win",
        "targets.csv, line 6, column 'period', value '2026-13': not a period: write a quarter 2026Q2, a month 2026-05 or a year 2026",
        "targets.csv, line 7, column 'owner', value empty: the same period and owner as line 5: one target each",
    ]


def test_a_missing_column_is_named(tmp_path):
    with pytest.raises(DataError, match="column 'target': missing column"):
        read_targets(_write(tmp_path / "targets.csv", "period,owner\n2026Q2,\n"))


def test_the_summary_takes_the_team_target_of_the_folder(tmp_path):
    from landing_hand_data import landing_dataset
    ds = landing_dataset(tmp_path / "ds")
    assert targets_of(ds) is None
    _write(tmp_path / "ds" / "targets.csv", "period,owner,target\n2024Q2,,3800\n")
    from funnelkit.metrics.summary import metrics_summary
    s = metrics_summary(ds, fk.Period("2024-04-01", "2024-06-30", "2024-05-01"))
    assert s["landing_forecast"]["target"] == 3800.0
    assert s["coverage"]["gap"] == 1800.0
