"""The sample generator: contract form, reproducibility, the shipped data/sample, and the story the
numbers tell (sources, products, owners, seasonality, skips, back moves, stalls, outliers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.cli import main
from funnelkit.contract import DEAL_COLUMNS, HISTORY_COLUMNS
from funnelkit.sample import OWNERS, PRODUCTS, SOURCES, STAGES, generate, write_sample


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_generate_returns_text_ready_contract_tables():
    deals, history, pipeline = generate(400, seed=3)
    assert tuple(deals.columns) == DEAL_COLUMNS and tuple(history.columns) == HISTORY_COLUMNS
    assert len(deals) == 400 and deals["deal_id"].is_unique
    assert deals["deal_id"].iloc[0] == "D00001" and deals["deal_id"].iloc[-1] == "D00400"
    assert set(deals["status"]) == {"open", "won", "lost"}
    # Timestamps are ISO text (date-time or date only), amounts plain numbers or empty.
    iso = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?"
    assert deals["created_at"].str.fullmatch(iso).all()
    assert history["entered_at"].astype(str).str.fullmatch(iso).all()
    assert deals["closed_at"].eq("").eq(deals["status"].eq("open")).all()
    amounts = deals["amount"][deals["amount"].ne("")]
    assert amounts.str.fullmatch(r"\d+(\.\d\d)?").all()
    assert deals["amount"].eq("").sum() > 0 and deals.loc[deals["amount"].eq(""), "status"].eq("open").all()
    assert pipeline.stages == STAGES and pipeline.currency == "USD"


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = write_sample(tmp_path / "a", deals=500, seed=5)
    b = write_sample(tmp_path / "b", deals=500, seed=5)
    c = write_sample(tmp_path / "c", deals=500, seed=6)
    assert _digest(a) == _digest(b)
    assert sorted(_digest(a)) == ["deals.csv", "pipeline.yml", "stage_history.csv"]
    assert _digest(a)["deals.csv"] != _digest(c)["deals.csv"]
    assert _digest(a)["stage_history.csv"] != _digest(c)["stage_history.csv"]
    d1, h1, _ = generate(500, seed=5)
    d2, h2, _ = generate(500, seed=5)
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(h1, h2)


def test_chunked_writing_matches_generate(tmp_path, monkeypatch):
    import funnelkit.sample as sample
    monkeypatch.setattr(sample, "_CHUNK", 97)    # many chunks: headers once, rows in order
    out = write_sample(tmp_path / "s", deals=300, seed=9)
    deals, history, _ = generate(300, seed=9)
    assert (out / "deals.csv").read_text() == deals.to_csv(index=False, lineterminator="\n")
    assert (out / "stage_history.csv").read_text() == history.to_csv(index=False, lineterminator="\n")


def test_cli_sample_data_is_reproducible(tmp_path, capsys):
    assert main(["sample-data", str(tmp_path / "x"), "--deals", "250", "--seed", "4"]) == 0
    assert main(["sample-data", str(tmp_path / "y"), "--deals", "250", "--seed", "4"]) == 0
    assert "250 deals (seed 4)" in capsys.readouterr().out
    assert _digest(tmp_path / "x") == _digest(tmp_path / "y")
    ds = fk.load(tmp_path / "x")
    assert len(ds.deals) == 250 and ds.report.ok


def test_cli_sample_data_bad_arguments_exit_2_without_traceback(tmp_path, capsys):
    assert main(["sample-data", str(tmp_path / "x"), "--deals", "0"]) == 2
    assert main(["sample-data", str(tmp_path / "x"), "--start", "someday"]) == 2
    err = capsys.readouterr().err
    assert "deals must be at least 1" in err and "not a date" in err and "Traceback" not in err


def test_start_and_days_set_the_window():
    deals, history, _ = generate(500, seed=2, start="2023-01-01", days=90)
    created = pd.to_datetime(deals["created_at"], format="ISO8601")
    assert created.min() >= pd.Timestamp("2023-01-01") and created.max() < pd.Timestamp("2023-04-01")
    closed = pd.to_datetime(deals["closed_at"].replace("", None), format="ISO8601")
    entered = pd.to_datetime(history["entered_at"].astype(str), format="ISO8601")
    assert closed.max() < pd.Timestamp("2023-04-01") and entered.max() < pd.Timestamp("2023-04-01")


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_other_table_formats_load_the_same(tmp_path, fmt):
    ref = fk.load(write_sample(tmp_path / "csv", deals=150, seed=8))
    got = fk.load(write_sample(tmp_path / fmt, deals=150, seed=8, table_format=fmt))
    assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == [f"deals.{fmt}", "pipeline.yml", f"stage_history.{fmt}"]
    pd.testing.assert_frame_equal(ref.deals, got.deals)
    pd.testing.assert_frame_equal(ref.stage_history, got.stage_history)


def test_shipped_sample_validates_and_is_the_generators_default_with_a_change_log(sample_path, tmp_path):
    report = fk.validate(sample_path)
    assert report.ok, report.summary()
    assert report.entries_added == 0 and report.repeats_merged == 0
    fresh = write_sample(tmp_path / "s", with_changes=True)
    assert _digest(fresh) == _digest(sample_path)
    assert "deal_changes.csv" in _digest(sample_path)
    size = sum(p.stat().st_size for p in sample_path.iterdir())
    assert 100_000 < size < 1_500_000


# ----------------------------------------------------------------------------------------------
# The story in the shipped sample

@pytest.fixture(scope="module")
def story():
    ds = fk.load(Path(__file__).resolve().parents[1] / "data" / "sample")
    d = ds.deals.copy()
    d["won"] = d["status"].eq("won")
    return ds, d


def test_window_and_volume(story):
    ds, d = story
    assert len(d) == 3000
    assert d["created_at"].min() >= pd.Timestamp("2024-10-01")
    assert d["created_at"].max() < pd.Timestamp("2026-10-01")
    last = pd.concat([d["closed_at"], ds.stage_history["entered_at"]]).max()
    assert pd.Timestamp("2026-09-01") < last < pd.Timestamp("2026-10-01")
    quarters = d["created_at"].dt.to_period("Q").astype(str)
    assert sorted(quarters.unique()) == ["2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4",
                                         "2026Q1", "2026Q2", "2026Q3"]
    # Some timestamps carry a time of day, some are dates only.
    tod = d["created_at"].dt.hour.gt(0)
    assert 0.7 < tod.mean() < 0.95


def test_sources_differ_in_volume_and_win_rate(story):
    _, d = story
    closed = d[d["status"].ne("open")]
    rate = closed.groupby("source", observed=True)["won"].mean()
    volume = d["source"].value_counts()
    assert set(rate.index) == set(SOURCES)
    assert volume["Referrals"] == volume.min() and rate["Referrals"] == rate.max()
    assert rate["Contextual ads"] == rate.min() and volume["Contextual ads"] > volume["Referrals"] * 2
    assert rate["Referrals"] > 2 * rate["Contextual ads"]


def test_products_differ_in_size_and_count(story):
    _, d = story
    med = d.groupby("product", observed=True)["amount"].median()
    count = d["product"].value_counts()
    assert set(med.index) == set(PRODUCTS)
    assert med["Set"] < med["Collection"] < med["Service package"]
    assert count["Set"] > count["Collection"] > count["Service package"]
    # Conference deals are bigger than ad deals.
    by_src = d.groupby("source", observed=True)["amount"].median()
    assert by_src["Conferences & events"] > by_src["Contextual ads"]


def test_outliers_and_missing_amounts(story):
    _, d = story
    a = d["amount"].dropna()
    assert a.min() >= 0 and a.max() > 10 * a.median()
    assert 3 <= (a > a.quantile(0.75) + 3 * (a.quantile(0.75) - a.quantile(0.25))).sum() <= 200
    assert d["amount"].isna().sum() > 0 and d.loc[d["amount"].isna(), "status"].eq("open").all()


def test_owners_differ_in_skill(story):
    _, d = story
    closed = d[d["status"].ne("open")]
    rate = closed.groupby("owner", observed=True)["won"].mean()
    assert 6 <= len(rate) <= 10 and set(rate.index) == set(OWNERS)
    assert rate.max() - rate.min() > 0.1
    # The late hire has no deals before joining.
    hugo = d[d["owner"].eq("Hugo Silva")]
    assert len(hugo) > 0 and hugo["created_at"].min() >= pd.Timestamp("2025-07-01")


def test_seasonality(story):
    _, d = story
    q = d.groupby(d["created_at"].dt.to_period("Q")).size()
    assert q[pd.Period("2025Q4")] > q[pd.Period("2025Q3")]          # Q4 push vs summer
    by_month = d.groupby(d["created_at"].dt.month).size()
    assert by_month[[7, 8]].mean() < 0.85 * by_month[[10, 11]].mean()


def test_skips_back_moves_and_late_starts(story):
    ds, _ = story
    v = ds.visits
    nxt = v["next_stage_index"]
    assert (nxt.ge(0) & nxt.lt(v["stage_index"])).sum() >= 20        # moved back a stage
    assert (nxt.gt(v["stage_index"] + 1)).sum() >= 50                # skipped a stage
    first = ds.stage_history.groupby("deal_id", observed=True)["stage_index"].first()
    assert (first > 0).sum() >= 50                                   # started past Lead


def test_win_chance_falls_with_time_in_stage(story):
    ds, _ = story
    v = ds.visits
    last_neg = v[v["is_last"] & v["stage"].eq("Negotiation") & v["status"].ne("open")].copy()
    last_neg["days"] = (last_neg["closed_at"] - last_neg["entered_at"]).dt.total_seconds() / 86400
    short = last_neg[last_neg["days"] <= last_neg["days"].quantile(0.25)]
    long = last_neg[last_neg["days"] >= last_neg["days"].quantile(0.75)]
    assert short["status"].eq("won").mean() > long["status"].eq("won").mean() + 0.1


def test_open_deals_at_the_end_some_stuck(story):
    ds, d = story
    open_ = d[d["status"].eq("open")]
    assert 50 <= len(open_) <= 600
    v = ds.visits
    end = pd.Timestamp("2026-10-01")
    ended = v["next_entered_at"].fillna(v["closed_at"])
    past = v[ended.notna()]
    typical = ((ended[ended.notna()] - past["entered_at"]).dt.days).groupby(past["stage"], observed=True).median()
    now = v[v["is_last"] & v["status"].eq("open")]
    days = (end - now["entered_at"]).dt.days
    stuck = days > 4 * now["stage"].map(typical).astype(float)
    assert stuck.sum() >= 5


def test_big_generation_is_vectorised(tmp_path):
    """200,000 deals in seconds: no per-deal Python loop (the benchmark makes a million)."""
    import time
    t = time.perf_counter()
    deals, history, _ = generate(200_000, seed=1)
    elapsed = time.perf_counter() - t
    assert len(deals) == 200_000 and len(history) > 400_000
    assert elapsed < 30, f"generate(200000) took {elapsed:.1f}s"


def test_an_existing_data_set_is_not_overwritten_without_force(tmp_path, capsys):
    from funnelkit.cli import main
    out = write_sample(tmp_path / "s", deals=50, seed=1)
    before = (out / "deals.csv").read_bytes()
    assert main(["sample-data", str(out), "--deals", "5"]) == 2
    err = capsys.readouterr().err
    assert "already holds a data set" in err and "--force" in err and "Traceback" not in err
    assert (out / "deals.csv").read_bytes() == before
    assert main(["sample-data", str(out), "--deals", "5", "--force"]) == 0
    assert (out / "deals.csv").read_bytes() != before


def test_chinese_named_variant_is_the_same_data_with_chinese_names(tmp_path):
    from funnelkit.sample import NAMES_ZH

    en = write_sample(tmp_path / "en", deals=300, seed=5)
    zh = write_sample(tmp_path / "zh", deals=300, seed=5, lang="zh")
    deals_en = pd.read_csv(en / "deals.csv", dtype=str, keep_default_na=False)
    deals_zh = pd.read_csv(zh / "deals.csv", dtype=str, keep_default_na=False)
    for column in ("source", "product", "owner"):
        deals_en[column] = deals_en[column].map(NAMES_ZH)
    pd.testing.assert_frame_equal(deals_zh, deals_en)
    hist_en = pd.read_csv(en / "stage_history.csv", dtype=str)
    hist_en["stage"] = hist_en["stage"].map(NAMES_ZH)
    pd.testing.assert_frame_equal(pd.read_csv(zh / "stage_history.csv", dtype=str), hist_en)
    ds = fk.load(zh)
    assert list(ds.stages) == ["线索", "资格确认", "方案演示", "报价", "谈判"]
    assert ds.currency == "CNY" and ds.name == "示例销售管道"
    assert {"客户推荐", "展会", "搜索广告"} <= set(ds.deals["source"].astype(str))
    assert {"张伟", "李娜"} <= set(ds.deals["owner"].astype(str))
    with pytest.raises(ValueError, match="lang must be one of en, zh, not 'fr'"):
        write_sample(tmp_path / "fr", deals=10, lang="fr")


def test_with_changes_same_deals_a_clean_log_and_the_same_bytes(tmp_path, monkeypatch):
    import funnelkit.sample as sample
    from funnelkit.metrics import date_changes, pipeline_waterfall
    plain = write_sample(tmp_path / "plain", deals=600, seed=4)
    a = write_sample(tmp_path / "a", deals=600, seed=4, with_changes=True)
    monkeypatch.setattr(sample, "_CHUNK", 97)
    b = write_sample(tmp_path / "b", deals=600, seed=4, with_changes=True)
    assert _digest(a) == _digest(b)
    assert sorted(_digest(a)) == ["deal_changes.csv", "deals.csv", "pipeline.yml", "stage_history.csv"]
    assert _digest(a)["stage_history.csv"] == _digest(plain)["stage_history.csv"]
    with_log = pd.read_csv(a / "deals.csv", dtype=str, keep_default_na=False)
    assert list(with_log.columns) == list(DEAL_COLUMNS) + ["expected_close_date", "forecast_category", "lost_reason"]
    assert with_log[list(DEAL_COLUMNS)].to_csv(index=False, lineterminator="\n") == (plain / "deals.csv").read_text()
    ds = fk.load(a)                       # strict: every change valid, every last change = deals.csv
    fields = ds.deal_changes["field"].value_counts()
    assert set(fields.index) == {"amount", "expected_close_date", "forecast_category"}
    moves = date_changes(ds)["kind"].value_counts()
    assert moves["push"] > 100 and moves["pull_in"] > 10
    # Some amount edits land on the very instant of a won deal's close.
    won = ds.deals[ds.deals["status"] == "won"].set_index("deal_id")["closed_at"]
    amt = ds.deal_changes[ds.deal_changes["field"] == "amount"]
    assert (amt["changed_at"].to_numpy() == won.reindex(amt["deal_id"]).to_numpy()).sum() > 0
    assert set(ds.deals.loc[ds.deals["status"] == "lost", "lost_reason"]) == set(sample._LOST_REASONS)
    w = pipeline_waterfall(ds, "2025-04-01", "2025-07-01", window="2025Q2")
    assert w.balance["balanced"] and w.movements.set_index("movement").loc["pushed_out", "deals"] > 0
    # Writing a plain sample over it (with --force) removes the stale log.
    write_sample(a, deals=600, seed=4, force=True)
    assert sorted(_digest(a)) == ["deals.csv", "pipeline.yml", "stage_history.csv"]
