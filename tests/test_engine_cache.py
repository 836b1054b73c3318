"""The engine's per-data-set state: the change log's amounts as an engine table (the amount as known
at an instant computed there, as :func:`funnelkit.changes.known_for` defines it), and the kept
query results of a loaded folder, which a data set derived from it never sees."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.changes import known_for
from funnelkit.engine import tables as engine_tables
from funnelkit.engine.tables import tables_of, to_frame
from funnelkit.metrics import amount_by, deal_size, time_in_stage, win_rate
from stages_hand_data import write_dataset

JAN = fk.Period("2024-01-01", "2024-01-31")


@pytest.fixture()
def hand(tmp_path):
    return fk.load(write_dataset(tmp_path))


def test_amounts_as_known_in_the_engine_are_known_for_at_every_instant(sample_ds):
    ds = sample_ds
    changes = ds.deal_changes[ds.deal_changes["field"] == "amount"]
    assert len(changes) > 100
    t = tables_of(ds)
    # At, just before and just after change instants (ties and the first change's own instant),
    # and before any change at all.
    instants = sorted(set(changes["changed_at"].iloc[::97]))[:6]
    instants = [instants[0] - pd.Timedelta(days=400)] + [
        i + d for i in instants for d in (pd.Timedelta(0), pd.Timedelta(microseconds=1), -pd.Timedelta(seconds=1))]
    for at in instants:
        got = to_frame(t.amounts_at(at))
        rows = np.flatnonzero(ds.deals["created_at"].to_numpy() < at.to_datetime64())
        want = known_for(ds, "amount", rows, np.full(len(rows), at.to_datetime64()))
        assert got["deal_row"].tolist() == rows.tolist()
        np.testing.assert_array_equal(got["amount"].to_numpy(dtype=float), np.asarray(want, dtype=float))
    # Many instants in one expression (the weekly snapshots' form): the same values per instant.
    many = to_frame(t.amounts_known(instants)).sort_values(["i", "deal_row"])
    for i, at in enumerate(instants):
        got = many[many["i"] == i]
        rows = np.flatnonzero(ds.deals["created_at"].to_numpy() < at.to_datetime64())
        want = known_for(ds, "amount", rows, np.full(len(rows), at.to_datetime64()))
        assert got["deal_row"].tolist() == rows.tolist()
        np.testing.assert_array_equal(got["amount"].to_numpy(dtype=float), np.asarray(want, dtype=float))


def test_the_amount_tables_are_made_once_per_data_set_and_instant(sample_ds):
    t = tables_of(sample_ds)
    at = pd.Timestamp("2026-04-01")
    assert t.amount_changes is tables_of(sample_ds).amount_changes is not None
    assert t.amounts_at(at) is t.amounts_at(at.to_pydatetime())    # same instant, same table
    assert t.amounts_at(at) is not t.amounts_at(at + pd.Timedelta(seconds=1))


def test_no_change_log_no_amount_table(hand):
    assert tables_of(hand).amount_changes is None and tables_of(hand).amounts_at(JAN.as_of) is None


def test_a_query_runs_once_and_every_caller_gets_its_own_frame(hand, monkeypatch):
    ran = []
    fetch = engine_tables._fetch
    monkeypatch.setattr(engine_tables, "_fetch", lambda expr: ran.append(expr) or fetch(expr))
    first = time_in_stage(hand, JAN)
    n = len(ran)
    assert n > 0
    first["visits"] = -1                                  # a caller edits its copy
    again = time_in_stage(hand, JAN)
    assert len(ran) == n                                  # nothing ran again
    assert again["visits"].tolist() == [4, 3, 3, 0]      # the hand data's January visits
    pd.testing.assert_frame_equal(again, time_in_stage(hand, JAN))


def test_a_derived_data_set_never_gets_the_parents_results(hand):
    size = deal_size(hand, JAN)
    rate = win_rate(hand, JAN)
    by_owner = amount_by(hand, JAN, by="owner")
    # dataclasses.replace: the same frames with every amount doubled and every deal won.
    doubled = hand.deals.assign(amount=hand.deals["amount"] * 2)
    twice = dataclasses.replace(hand, deals=doubled)
    assert deal_size(twice, JAN)["mean"] == 2 * size["mean"]
    assert deal_size(twice, JAN)["median"] == 2 * size["median"]
    np.testing.assert_allclose(amount_by(twice, JAN, by="owner")["won_amount"], 2 * by_owner["won_amount"])
    assert win_rate(twice, JAN) == rate
    # filter: only some owners' deals
    owner = by_owner["owner"].iloc[0]
    one = hand.filter(owner=owner)
    assert amount_by(one, JAN, by="owner")["owner"].tolist() == [owner]
    # and the parent still has its own numbers
    assert deal_size(hand, JAN) == size
    pd.testing.assert_frame_equal(amount_by(hand, JAN, by="owner"), by_owner)
    # refresh() after editing a data set in place forgets what was kept
    hand.deals["amount"] = hand.deals["amount"] * 3
    hand.refresh()
    assert deal_size(hand, JAN)["mean"] == 3 * size["mean"]


def test_large_results_are_not_kept(hand, monkeypatch):
    monkeypatch.setattr(engine_tables, "MAX_KEPT_BYTES", 0)
    time_in_stage(hand, JAN)
    assert tables_of(hand)._results == {}


def test_the_in_process_duckdb_holds_half_the_memory_and_spills_into_a_folder_of_its_own(tmp_path):
    import os
    import tempfile

    con = tables_of(fk.load(write_dataset(tmp_path / "a"))).con
    limit, spill = con.raw_sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    number, unit = limit.split()
    assert unit == "GiB" and abs(float(number) * 2**30 - total / 2) <= 0.1 * 2**30     # DuckDB prints 1 decimal
    assert os.path.dirname(spill) == tempfile.gettempdir() and os.path.basename(spill).startswith("funnelkit-duckdb-")
    assert os.path.isdir(spill)
    other = tables_of(fk.load(write_dataset(tmp_path / "b"))).con.raw_sql("SELECT current_setting('temp_directory')").fetchone()[0]
    assert other != spill                    # two data sets never spill into the same files


def test_a_forecast_at_the_same_instant_reuses_the_kept_results(hand, monkeypatch):
    # The report forecasts at as_of twice (the win forecast, the landing forecast's open deals): the
    # second call runs no query, and gives the same frame; another instant runs its own.
    from funnelkit.metrics import win_forecast

    fetched = []
    fetch = engine_tables._fetch
    monkeypatch.setattr(engine_tables, "_fetch", lambda expr: fetched.append(1) or fetch(expr))
    first = win_forecast(hand, JAN.as_of)
    runs = len(fetched)
    assert runs == 3                                # deal counts, past cells, open deals' evidence
    pd.testing.assert_frame_equal(win_forecast(hand, JAN.as_of), first)
    assert len(fetched) == runs
    assert sorted(first["deal_id"]) == ["D3", "D4", "D6", "D8"]     # open on 2024-02-01 (D4 closes 02-10)
    win_forecast(hand, JAN.as_of - pd.Timedelta(days=1))
    assert len(fetched) == 2 * runs


def test_the_uploaded_frames_are_not_kept_registered_beside_their_tables(hand):
    con = tables_of(hand).con
    kinds = dict(con.raw_sql("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    assert kinds == {"deals": "LOCAL TEMPORARY", "entries": "LOCAL TEMPORARY"}
    assert to_frame(tables_of(hand).deals.count().as_table()).iloc[0, 0] == len(hand.deals)


def test_the_backtests_kept_past_visits_are_compressed_in_the_store(sample_ds):
    # A forecast at one instant computes the past visits in its queries (two reads: cheaper than
    # keeping them); the backtest, whose two queries read them cross-joined with every backtest
    # instant, keeps them. DuckDB keeps
    # temporary tables uncompressed (the kept past visits: 127 MB at 1M deals, 30 MB compressed):
    # they go into the in-process DuckDB's compressed in-memory database, compressed once written.
    # The past visits with their deals' group columns are joined per query, not kept.
    from funnelkit.metrics import backtest_forecast, win_forecast

    ds = dataclasses.replace(sample_ds)        # tables of its own: no earlier test's backtest there
    con = tables_of(ds).con

    def tables() -> dict:
        return dict(con.raw_sql("SELECT table_name, table_catalog FROM information_schema.tables").fetchall())

    win_forecast(ds, pd.Timestamp("2026-01-01"))
    assert not [name for name in tables() if name.startswith("past")]
    backtest_forecast(ds)
    where = tables()
    past = sorted(name.rsplit("_", 1)[0] for name in where if name.startswith("past"))    # less the uuid
    assert past == ["past"]
    assert {where[n] for n in where if n.startswith("past")} == {engine_tables.STORE}
    assert where["deals"] == where["entries"] == "temp"
    methods = {m for (m,) in con.raw_sql(
        "SELECT DISTINCT compression FROM pragma_storage_info('{}.main.{}')".format(
            engine_tables.STORE, next(n for n in where if n.startswith("past_")))).fetchall()}
    assert methods - {"Uncompressed"}, methods


def test_compress_is_a_plain_temporary_table_on_a_connection_without_a_store():
    import ibis

    con = ibis.duckdb.connect()
    t = engine_tables.temp_table(con, "x", ibis.memtable({"a": [1, 2, 3]}), compress=True)
    assert t.to_pandas()["a"].tolist() == [1, 2, 3]
    assert con.raw_sql("SELECT table_catalog FROM information_schema.tables WHERE table_name = 'x'").fetchall() == [("temp",)]


def test_no_compressed_store_only_where_duckdb_refuses_it():
    # An older DuckDB refuses the ATTACH option (a duckdb.Error): no store, plain temporary tables.
    # Anything else (a bug of ours) is not taken for that.
    import duckdb
    import ibis

    class Refusing:
        def __init__(self, error):
            self.error = error

        def raw_sql(self, sql):
            raise self.error

    assert engine_tables._compressed_store(Refusing(duckdb.BinderException("unrecognized option COMPRESS"))) is False
    with pytest.raises(TypeError):
        engine_tables._compressed_store(Refusing(TypeError("not DuckDB's")))
    assert engine_tables._compressed_store(ibis.duckdb.connect()) is True
