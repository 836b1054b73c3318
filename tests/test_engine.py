"""The engine layer: a data set read straight from a database (fk.connect), its contract checks run
in the engine (counts and example deal ids), the normalisation there, and the same numbers as the
folder loader. Runs on in-process DuckDB always, and on PySpark and PostgreSQL in `make engines`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.engine.views import exact_quantile
from funnelkit.metrics import amount_by, stuck_deals, time_in_stage
from funnelkit.period import Period
from engines import ENGINES, on_engine, put_tables, raw_tables
from stages_hand_data import DEALS, HISTORY, STAGES, write_dataset

JAN = Period("2024-01-01", "2024-01-31")


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    folder = write_dataset(tmp_path_factory.mktemp("hand"))
    return folder, fk.load(folder)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def _connect(engine, request, deals, hist, **kw):
    con, names = put_tables(engine, request, deals, hist)
    kw.setdefault("stages", STAGES)
    return fk.connect(con, deals=names[0], stage_history=names[1], **kw)


def test_connected_data_set_gives_the_loaders_numbers(engine, request, hand):
    folder, loaded = hand
    deals, hist = raw_tables(loaded)
    ds = _connect(engine, request, deals, hist)
    assert isinstance(ds, fk.Dataset) and ds.stages == STAGES
    pd.testing.assert_frame_equal(time_in_stage(ds, JAN), time_in_stage(loaded, JAN))
    pd.testing.assert_frame_equal(amount_by(ds, JAN, by="owner"), amount_by(loaded, JAN, by="owner"))
    a, b = stuck_deals(ds, JAN.as_of), stuck_deals(loaded, JAN.as_of)
    assert a["deal_id"].tolist() == b["deal_id"].tolist() == ["D8", "D6", "D3"]
    np.testing.assert_allclose(a["days_in_stage"], b["days_in_stage"])
    # A metric not yet on the engine works on the fetched frames: same values as the loaded ones.
    assert fk.metrics.win_rate(ds, JAN) == fk.metrics.win_rate(loaded, JAN)
    assert ds.deals["deal_id"].tolist() == sorted(d[0] for d in DEALS)


def test_the_engine_normalises_entries_like_the_loader(engine, request, hand):
    _, loaded = hand
    deals, hist = raw_tables(loaded)
    # Unnormalised input: D1 has a repeated Qualified entry (merged), D7 has no entry (one is added
    # at its created_at, first stage), and the rows are in no particular order.
    hist = pd.concat([hist, pd.DataFrame({"deal_id": ["D1"], "stage": ["Qualified"],
                                          "entered_at": [pd.Timestamp("2024-01-07")]})])
    hist = hist[hist["deal_id"] != "D7"].iloc[::-1].astype({"entered_at": "datetime64[us]"})
    ds = _connect(engine, request, deals, hist)
    assert (ds.report.entries_added, ds.report.repeats_merged) == (1, 1)
    got = ds.stage_history
    want = loaded.stage_history
    assert got["deal_id"].tolist() == want["deal_id"].tolist()
    assert got["stage"].astype(str).tolist() == want["stage"].astype(str).tolist()
    assert got["entered_at"].tolist() == want["entered_at"].tolist()


def _bad_tables():
    deals = pd.DataFrame([
        # deal_id, created_at, status, closed_at, amount, source, product, owner
        ("A1", "2024-01-01", "won", None, 10.0, "Web", "X", "Ann"),          # won without closed_at
        ("A2", "2024-01-01", "WON ", "2024-01-05", 10.0, "Web", "X", "Ann"),  # status in any case: fine
        ("A3", "2024-01-01", "pending", None, 5.0, "Web", "X", "Ann"),       # unknown status
        ("A3", "2024-01-02", "open", None, 5.0, "Web", "X", "Ann"),          # duplicate id
        ("A4", "2024-01-10", "lost", "2024-01-05", 1.0, "", None, "Bo"),     # closed before created
        ("A5", "2024-01-01", "open", None, -3.0, "Web", "X", "Bo"),          # negative amount
        ("A6", "2024-01-01", "lost", "2024-01-09", None, "Web", "X", "Bo"),  # lost, amount unknown
    ], columns=["deal_id", "created_at", "status", "closed_at", "amount", "source", "product", "owner"])
    for col in ("created_at", "closed_at"):
        deals[col] = pd.to_datetime(deals[col]).astype("datetime64[us]")
    hist = pd.DataFrame([
        ("A2", "Lead", "2024-01-01"),
        ("A2", "Closing", "2024-01-02"),        # unknown stage
        ("A5", "Lead", "2023-12-01"),           # before created_at
        ("A6", "Qualified", "2024-01-20"),      # after closed_at
        ("ZZ", "Lead", "2024-01-01"),           # unknown deal
    ], columns=["deal_id", "stage", "entered_at"])
    hist["entered_at"] = pd.to_datetime(hist["entered_at"]).astype("datetime64[us]")
    return deals, hist


def test_contract_checks_run_in_the_engine_with_counts_and_examples(engine, request):
    deals, hist = _bad_tables()
    with pytest.raises(fk.DataError) as err:
        _connect(engine, request, deals, hist)
    found = {(p.column, p.reason.split(":")[0]): p for p in err.value.problems}
    assert set(found) == {
        ("status", "unknown status (expected open, won or lost, in any case)"),
        ("closed_at", "a won or lost deal needs closed_at"),
        ("closed_at", "closed_at is before created_at"),
        ("amount", "amount is negative"),
        ("amount", "amount is empty on a won or lost deal (allowed only for open deals, unless "
                   "pipeline.yml says allow_missing_amounts"),
        ("deal_id", "duplicate deal_id"),
        ("deal_id", "stage entry for a deal not in the deals table"),
        ("stage", "stage not in pipeline.yml (stages"),
        ("entered_at", "stage entry before the deal's created_at"),
        ("entered_at", "stage entry after the deal's closed_at"),
    }
    dup = found[("deal_id", "duplicate deal_id")]
    assert dup.reason == "duplicate deal_id: 2 rows (deal ids, e.g.: A3, A3)"
    status = found[("status", "unknown status (expected open, won or lost, in any case)")]
    assert status.value == "'pending'" and status.reason.endswith("1 row (deal ids, e.g.: A3)")
    stage = found[("stage", "stage not in pipeline.yml (stages")]
    assert stage.value == "'Closing'" and stage.reason.endswith("1 row (deal ids, e.g.: A2)")
    assert found[("entered_at", "stage entry before the deal's created_at")].reason.endswith("e.g.: A5)")
    assert "table fk_t" in str(err.value) and str(err.value).startswith("10 problems in data set")


def test_missing_amounts_allowed_by_the_pipeline(engine, request):
    deals, hist = _bad_tables()
    deals = deals[deals["deal_id"].isin(["A2", "A6"])]
    hist = hist[hist["deal_id"] == "A2"].iloc[:1]
    ds = _connect(engine, request, deals, hist, allow_missing_amounts=True)
    assert ds.report.closed_without_amount == 1 and ds.report.entries_added == 1
    assert ds.deals["status"].astype(str).tolist() == ["won", "lost"]


def test_wrong_column_types_and_missing_tables_are_named():
    import ibis

    con = ibis.duckdb.connect()
    deals, hist = _bad_tables()
    con.create_table("deals", deals.astype({"created_at": str}))
    con.create_table("stage_history", hist.drop(columns=["stage"]))
    with pytest.raises(fk.DataError) as err:
        fk.connect(con, stages=STAGES)
    text = str(err.value)
    assert "table deals, column 'created_at': is string in the database" in text
    assert "table stage_history, column 'stage': required column missing" in text
    with pytest.raises(fk.DataError, match="table nowhere: cannot open the deals table"):
        fk.connect(con, deals="nowhere", stages=STAGES)
    with pytest.raises(TypeError, match="pipeline="):
        fk.connect(con)


def test_pipeline_from_a_local_file_or_a_mapping(hand):
    import ibis

    folder, loaded = hand
    con = ibis.duckdb.connect()
    deals, hist = raw_tables(loaded)
    con.create_table("deals", deals)
    con.create_table("stage_history", hist)
    ds = fk.connect(con, pipeline=folder)              # the folder's pipeline.yml
    assert ds.stages == STAGES and ds.currency == "USD"
    ds = fk.connect(con, pipeline={"stages": STAGES, "currency": "eur"})
    assert ds.currency == "EUR"
    with pytest.raises(fk.DataError, match="stage listed twice"):
        fk.connect(con, pipeline={"stages": ["Lead", "Lead"]})


def test_a_database_file_by_url(tmp_path, hand):
    import ibis

    _, loaded = hand
    path = tmp_path / "crm.duckdb"
    con = ibis.duckdb.connect(str(path))
    deals, hist = raw_tables(loaded)
    con.create_table("deals", deals)
    con.create_table("stage_history", hist)
    con.disconnect()
    ds = fk.connect(f"duckdb://{path}", stages=STAGES)
    assert time_in_stage(ds, JAN)["visits"].tolist() == [4, 3, 3, 0]


def test_quantiles_are_refused_where_the_engine_only_approximates():
    import ibis

    t = ibis.table({"x": "float64"}, name="t")
    with pytest.raises(NotImplementedError, match="no exact quantile"):
        exact_quantile(t.x, 0.5, "bigquery")
    assert exact_quantile(t.x, 0.5, "duckdb") is not None


def test_history_and_views_are_unchanged_by_the_engine(hand):
    # The loaded data set's frames are copied into the engine, never modified.
    _, loaded = hand
    before = loaded.deals.copy(), loaded.stage_history.copy()
    time_in_stage(loaded, JAN)
    pd.testing.assert_frame_equal(loaded.deals, before[0])
    pd.testing.assert_frame_equal(loaded.stage_history, before[1])
    assert len(HISTORY) == 17


def test_text_is_trimmed_of_whitespace_only(engine, request):
    # As the loader's str.strip: spaces, tabs, line breaks, form feeds and vertical tabs go from both
    # ends, letters stay (Ibis's strip() trimmed the letters f and v on PySpark).
    deals = pd.DataFrame([
        ("\t fv1\r\n", "2024-01-01", " Won\x0b", "2024-01-05", 10.0, "\x0cfive ", "vf", "\vfavour\f"),
        ("v2", "2024-01-02", "open", None, 5.0, "f", " v ", "Ivan"),
    ], columns=["deal_id", "created_at", "status", "closed_at", "amount", "source", "product", "owner"])
    for col in ("created_at", "closed_at"):
        deals[col] = pd.to_datetime(deals[col]).astype("datetime64[us]")
    hist = pd.DataFrame([("fv1", "\tLead\n", "2024-01-01"), ("\fv2 ", "Lead", "2024-01-02")],
                        columns=["deal_id", "stage", "entered_at"])
    hist["entered_at"] = pd.to_datetime(hist["entered_at"]).astype("datetime64[us]")
    d = _connect(engine, request, deals, hist).deals
    got = {col: d[col].astype(str).tolist() for col in ("deal_id", "status", "source", "product", "owner")}
    assert got == {"deal_id": ["fv1", "v2"], "status": ["won", "open"], "source": ["five", "f"],
                   "product": ["vf", "v"], "owner": ["favour", "Ivan"]}


def test_dates_estimated_flag_in_a_database(engine, request):
    deals, hist = _bad_tables()
    deals = deals[deals["deal_id"].isin(["A2", "A4"])].copy()
    hist = hist[hist["deal_id"] == "A2"].iloc[:1]
    # A4 was closed (signed) on 01-05 and entered on 01-10: flagged, it is taken as created at its
    # close, as the loader does (docs/data-contract.md); A2's empty flag is false.
    deals["dates_estimated"] = [None, " TRUE"]
    ds = _connect(engine, request, deals, hist)
    d = ds.deals.set_index("deal_id")
    assert d.loc["A4", "created_at"] == pd.Timestamp("2024-01-05") and bool(d.loc["A4", "dates_estimated"])
    assert not bool(d.loc["A2", "dates_estimated"]) and ds.report.dates_estimated == 1
    deals["dates_estimated"] = ["maybe", "false"]
    with pytest.raises(fk.DataError) as err:
        _connect(engine, request, deals, hist)
    found = {(p.column, p.reason) for p in err.value.problems}
    assert found == {("dates_estimated", "dates_estimated must be true, false or empty: 1 row (deal ids, e.g.: A2)"),
                     ("closed_at", "closed_at is before created_at: 1 row (deal ids, e.g.: A4)")}


def test_visit_columns_fetched_as_arrays(engine, request, hand):
    # The engine's visits of D3 (Lead 01-03, Qualified 01-06, Proposal 01-09, back to Qualified 01-16),
    # as numpy arrays without a pandas frame (what the landing forecast reads), on every engine.
    from funnelkit.engine.tables import tables_of, to_arrays

    folder, loaded = hand
    ds = on_engine(engine, folder, request)
    v = tables_of(ds).visits
    got = to_arrays(v.filter(v.deal_id == "D3").select("stage_index", "entered_at", "next_entered_at", "is_last")
                    .order_by("entered_at"))
    day = lambda d: np.datetime64(f"2024-01-{d:02d}", "ns")
    assert got["stage_index"].tolist() == [0, 1, 2, 1]
    assert got["entered_at"].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(got["entered_at"], [day(3), day(6), day(9), day(16)])
    np.testing.assert_array_equal(got["next_entered_at"], [day(6), day(9), day(16), np.datetime64("NaT", "ns")])
    assert got["is_last"].tolist() == [False, False, False, True]
    # lost_reasons by stage reads the engine's last visits: D2 lost from Proposal, D7 from Lead
    lost = fk.metrics.lost_reasons(ds, JAN)
    assert lost[["stage", "deals", "amount"]].values.tolist() == [["Proposal", 1, 500.0], ["Lead", 1, 400.0]]
    pd.testing.assert_frame_equal(lost, fk.metrics.lost_reasons(loaded, JAN))
    # the landing forecast on the engine's visits: the same per-deal chances as the loaded folder's
    at = "2024-01-20"
    a, b = fk.metrics.landing_forecast(ds, JAN, at=at), fk.metrics.landing_forecast(loaded, JAN, at=at)
    pd.testing.assert_frame_equal(a.open_deals[["deal_id", "p_in_period", "window_evidence"]].reset_index(drop=True),
                                  b.open_deals[["deal_id", "p_in_period", "window_evidence"]].reset_index(drop=True))


def test_an_upload_is_handed_over_in_batches_of_the_same_rows():
    # DuckDB reads an Arrow table's batches on all its threads: the upload cuts a table, whether one
    # chunk or many small ones, into batches of at most UPLOAD_BATCH_ROWS, rows and types unchanged.
    import ibis
    import pyarrow as pa

    from funnelkit.engine.tables import UPLOAD_BATCH_ROWS, _batched, _put

    n = 2 * UPLOAD_BATCH_ROWS + 7
    one = pa.table({"i": np.arange(n), "t": pa.array([f"d{i % 97}" for i in range(n)]).dictionary_encode()})
    small = pa.Table.from_batches(one.to_batches(max_chunksize=1000))
    for table in (one, small):
        got = _batched(table)
        assert [b.num_rows for b in got.to_batches()] == [UPLOAD_BATCH_ROWS, UPLOAD_BATCH_ROWS, 7]
        assert got.schema == table.schema and got.equals(table)
    con = ibis.duckdb.connect()
    back = _put(con, "t", small).order_by("i").to_pandas()
    assert back["i"].tolist() == list(range(n)) and back["t"].iloc[[0, 96, 97, n - 1]].tolist() == \
        ["d0", "d96", "d0", f"d{(n - 1) % 97}"]
