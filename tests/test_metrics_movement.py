"""Where the pipeline went: the pipeline at an instant, the waterfall between two instants (hand data
of movement_hand_data.py, the worked example of docs/metrics.md section 9), and its balance on random data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from engines import ENGINES, with_change_log
from movement_hand_data import END, START, write_movement

import funnelkit as fk
from funnelkit.metrics import (pipeline_at, pipeline_waterfall, snapshot, stage_movement, waterfall_fields,
                               weekly_snapshots)
from funnelkit.errors import ArgumentError, NoDataWarning
from funnelkit.metrics.movement import MOVEMENTS


@pytest.fixture(scope="module", params=ENGINES)
def hand(request, tmp_path_factory):
    """The hand data (with its change log) on each engine."""
    return with_change_log(request.param, write_movement(tmp_path_factory.mktemp("mv") / "hand"), request)


def _moves(w):
    m = w.movements.set_index("movement")
    return {k: (int(m.loc[k, "deals"]), float(m.loc[k, "amount"])) for k in MOVEMENTS}


def _list(w):
    return [(r.movement, r.deal_id, str(pd.Timestamp(r.at).date()), r.amount) for r in w.deals.itertuples()]


def test_in_quarter_pipeline_by_hand(hand):
    w = pipeline_waterfall(hand, START, END, window="2026Q2")
    assert w.start_set["deal_id"].tolist() == ["A", "C", "E", "F", "J", "K"]
    assert (w.start_deals, w.start_amount) == (6, 10800.0)
    assert w.end_set["deal_id"].tolist() == ["A", "C", "D", "F", "J"]
    assert (w.end_deals, w.end_amount) == (5, 6900.0)
    assert _moves(w) == {"created": (1, 2000.0), "pulled_in": (2, 3800.0), "reopened": (0, 0.0),
                         "amount_up": (1, 500.0), "amount_down": (1, 500.0), "pushed_out": (1, 3000.0),
                         "won": (2, 3200.0), "lost": (1, 3500.0)}
    # Every bar's deal list, in time order. C is pushed out and pulled back in (both shown); D's amount
    # change on 04-20 happens outside the window (no movement), then D is pulled in with 800; E's change
    # at the instant of its close comes first, so it is lost with the amount it closed with.
    assert _list(w) == [
        ("created", "B", "2026-04-10", 2000.0), ("pushed_out", "C", "2026-04-15", 3000.0),
        ("amount_up", "F", "2026-04-25", 500.0), ("pulled_in", "D", "2026-05-05", 800.0),
        ("pulled_in", "C", "2026-05-10", 3000.0), ("won", "B", "2026-05-20", 2000.0),
        ("amount_down", "E", "2026-06-05", 500.0), ("lost", "E", "2026-06-05", 3500.0),
        ("won", "K", "2026-06-25", 1200.0)]
    assert w.balance == {"deals": 5, "end_deals": 5, "amount": 6900.0, "end_amount": 6900.0, "balanced": True}
    # The summary's entry, from the movements' types and amounts only: the same totals.
    fields = waterfall_fields(hand, START, END, window="2026Q2", label="period")
    assert fields == w.to_dict("period")
    assert (fields["start_deals"], fields["start_amount"], fields["end_deals"], fields["end_amount"]) == (6, 10800.0, 5, 6900.0)
    assert {k: (v["deals"], v["amount"]) for k, v in fields["movements"].items()} == _moves(w)


def test_every_open_deal_by_hand(hand):
    w = pipeline_waterfall(hand, START, END)
    assert (w.start_deals, w.start_amount, w.end_deals, w.end_amount) == (7, 11300.0, 6, 7600.0)
    assert _moves(w) == {"created": (2, 2700.0), "pulled_in": (0, 0.0), "reopened": (0, 0.0),
                         "amount_up": (2, 800.0), "amount_down": (1, 500.0), "pushed_out": (0, 0.0),
                         "won": (2, 3200.0), "lost": (1, 3500.0)}
    d = w.deals.set_index(["movement", "deal_id"])
    assert d.loc[("amount_up", "D"), ["amount_before", "amount_after"]].tolist() == [500.0, 800.0]
    assert d.loc[("lost", "E"), ["amount_before", "stage"]].tolist() == [3500.0, "Proposal"]
    assert d.loc[("won", "B"), "stage"] == "Proposal"
    fields = waterfall_fields(hand, START, END, label="all")
    assert fields == w.to_dict("all")
    assert fields["movements"]["amount_up"] == {"deals": 2, "amount": 800.0, "amount_unknown": 0}


def test_the_set_at_end_is_the_snapshot_at_end(hand):
    snap = snapshot(hand, END)
    at_end = pipeline_at(hand, END)
    assert snap["open_deals"].sum() == len(at_end) == 6
    assert snap["open_amount"].sum() == at_end["amount"].sum() == 7600.0


def test_stage_to_stage_view_by_hand(hand):
    v = stage_movement(hand, START, END, window="2026Q2")
    v = v.astype({"start_amount": object, "end_amount": object})
    v = v.where(v.notna(), None)             # None: no deal of the row was in the pipeline then
    got = {(r["from"], r["to"]): (r["deals"], r["start_amount"], r["end_amount"], r["amount_unknown"])
           for _, r in v.iterrows()}
    assert got == {
        ("(entered)", "Lead"): (1, None, 800.0, 0),          # D, pulled in
        ("(entered)", "won"): (1, None, None, 0),            # B, created and won inside
        ("Lead", "Qualified"): (1, 3000.0, 3000.0, 0),       # C
        ("Lead", "Lead"): (1, 1000.0, 1500.0, 0),            # F
        ("Qualified", "Qualified"): (2, 1600.0, 1600.0, 0),  # A, J
        ("Lead", "lost"): (1, 4000.0, None, 0),              # E (in Proposal from 04-10, lost from there)
        ("Lead", "won"): (1, 1200.0, None, 0),               # K
    }
    # Given the waterfall it reads, the same table without computing it again; another interval's is refused.
    w = pipeline_waterfall(hand, START, END, window="2026Q2")
    pd.testing.assert_frame_equal(stage_movement(hand, START, END, window="2026Q2", waterfall=w),
                                  stage_movement(hand, START, END, window="2026Q2"), check_exact=True)
    with pytest.raises(ArgumentError, match="window"):
        stage_movement(hand, START, END, waterfall=w)


def test_unknown_amounts_are_counted_never_zero(tmp_path):
    """contract_cases: D1 won 01-20 (1000), D2 lost 01-12 (500), D3 open (2000), D4 open, amount unknown,
    created 01-05 10:00 -- inside [01-04 12:00, 02-01)."""
    from contract_cases import write_dataset

    ds = fk.load(write_dataset(tmp_path / "d"))
    w = pipeline_waterfall(ds, "2024-01-04T12:00", "2024-02-01")
    assert (w.start_deals, w.start_amount, w.start_amount_unknown) == (3, 3500.0, 0)
    assert (w.end_deals, w.end_amount, w.end_amount_unknown) == (2, 2000.0, 1)
    m = w.movements.set_index("movement")
    assert m.loc["created", ["deals", "amount", "amount_unknown"]].tolist() == [1, 0.0, 1]
    assert m.loc["won", ["deals", "amount", "amount_unknown"]].tolist() == [1, 1000.0, 0]
    assert w.balance["balanced"]
    from funnelkit.takeaways import waterfall_takeaway
    assert waterfall_takeaway(w, "EUR").endswith(
        " 1 of the movements has an unknown amount: counted as a deal, left out of the amounts.")
    v = stage_movement(ds, "2024-01-04T12:00", "2024-02-01").set_index(["from", "to"])
    assert v.loc[("(entered)", "Lead"), "amount_unknown"] == 1
    assert pd.isna(v.loc[("(entered)", "Lead"), "end_amount"])           # unknown, not 0
    ax = fk.plot.waterfall_plot(w.movements, start_amount=w.start_amount, end_amount=w.end_amount,
                                start_unknown=w.start_amount_unknown, end_unknown=w.end_amount_unknown)
    labels = [t.get_text() for t in ax.texts]
    assert labels[1] == "unknown\n1 deals"                               # created: D4 alone
    assert labels[-1] == fk.plot.money(2000.0, "") + "\n+ 1 unknown"     # end: D3 known, D4 not
    entry = w.to_dict("all")
    assert entry["movements"]["created"] == {"deals": 1, "amount": 0.0, "amount_unknown": 1}
    assert (entry["start_amount_unknown"], entry["end_amount_unknown"]) == (0, 1)


def test_without_a_change_log_nothing_moves_but_deals(tmp_path):
    plain = fk.load(write_movement(tmp_path / "plain", changes=None))
    w = pipeline_waterfall(plain, START, END)
    # deals.csv values throughout: D is 800 and E 3500 at every instant.
    assert (w.start_amount, w.end_amount) == (1000 + 3000 + 800 + 3500 + 1500 + 600 + 1200, 7600.0)
    assert _moves(w)["amount_up"] == (0, 0.0) and _moves(w)["lost"] == (1, 3500.0)
    assert w.balance["balanced"]


def test_window_forms_agree(hand):
    a = pipeline_waterfall(hand, START, END, window="2026Q2")
    b = pipeline_waterfall(hand, START, END, window=("2026-04-01", "2026-06-30"))
    c = pipeline_waterfall(hand, START, END, window=fk.Period.quarter("2026Q2"))
    assert _moves(a) == _moves(b) == _moves(c)


def test_end_before_start_is_refused(hand):
    with pytest.raises(ValueError, match="before start"):
        pipeline_waterfall(hand, END, START)


# --------------------------------------------------------------------------------------------
# Random data: the waterfall balances, and its end set is the snapshot.

def _random_dataset(seed: int, n: int, with_window: bool, with_status: bool = False):
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2026-01-01")
    day = lambda k: base + pd.to_timedelta(k, unit="D")  # noqa: E731
    created = rng.integers(0, 60, n)
    life = rng.integers(0, 50, n)
    status = rng.choice(["open", "won", "lost"], n)
    closed = np.where(status == "open", -1, created + life)
    amount = rng.integers(0, 5, n) * 100.0
    deals = pd.DataFrame({
        "deal_id": [f"d{i}" for i in range(n)], "created_at": day(created),
        "status": pd.Categorical(status, categories=["open", "won", "lost"]),
        "closed_at": pd.Series(day(closed)).where(closed >= 0).to_numpy(),
        "amount": amount, "source": "s", "product": "p", "owner": "o",
        "expected_close_date": day(created + rng.integers(0, 90, n)),
    })
    hist = pd.DataFrame({"deal_id": deals["deal_id"], "stage": pd.Categorical(["A"] * n, categories=["A", "B"]),
                         "stage_index": np.zeros(n, dtype="int16"), "entered_at": deals["created_at"]})
    rows = []
    for i in range(n):
        end = closed[i] if closed[i] >= 0 else 100
        k = int(rng.integers(0, 4))
        times = sorted(rng.integers(created[i], end + 1, k)) if k else []
        for t in times:
            fld = rng.choice(["amount", "expected_close_date"]) if with_window else "amount"
            rows.append((f"d{i}", day(t), fld, float(rng.integers(0, 5) * 100.0),
                         day(t + int(rng.integers(-20, 60))), ""))
        # Earlier closes and reopenings, alternating, before the final close (some at the instants of
        # amount or date changes).
        pairs = int(rng.integers(0, 3)) if with_status else 0
        if pairs and end - created[i] >= 2 * pairs:
            times = np.sort(rng.choice(np.arange(created[i], end), 2 * pairs, replace=False))
            for k, t in enumerate(times):
                rows.append((f"d{i}", day(int(t)), "status", np.nan, pd.NaT,
                             "open" if k % 2 else str(rng.choice(["won", "lost"]))))
    ch = pd.DataFrame(rows, columns=["deal_id", "changed_at", "field", "amount", "date", "value"])
    ch = ch.astype({"deal_id": object, "field": object, "amount": "float64"})
    ch["changed_at"] = pd.to_datetime(ch["changed_at"]).astype("datetime64[ns]")
    ch["date"] = pd.to_datetime(ch["date"]).astype("datetime64[ns]")
    ch = ch.drop_duplicates(["deal_id", "changed_at", "field"])
    ch["amount"] = ch["amount"].where(ch["field"] == "amount")
    ch["date"] = ch["date"].where(ch["field"] == "expected_close_date")
    ch["value"] = ch["value"].astype(object)
    # The last change gives deals.csv's value (what the loader checks).
    last = ch[ch["field"] != "status"].sort_values("changed_at").drop_duplicates(["deal_id", "field"], keep="last")
    last = last.set_index("deal_id")
    la = last[last["field"] == "amount"]["amount"]
    has = deals["deal_id"].isin(la.index).to_numpy()
    deals["amount"] = np.where(has, la.reindex(deals["deal_id"]).to_numpy(dtype=float), deals["amount"])
    ld = last[last["field"] == "expected_close_date"]["date"]
    has = deals["deal_id"].isin(ld.index).to_numpy()
    deals["expected_close_date"] = np.where(has, ld.reindex(deals["deal_id"]).to_numpy(dtype="datetime64[ns]"),
                                            deals["expected_close_date"].to_numpy(dtype="datetime64[ns]"))
    pipe = fk.Pipeline(("A", "B"))
    ds = fk.Dataset(deals=deals, stage_history=hist.sort_values(["deal_id"]).reset_index(drop=True),
                    pipeline=pipe, name="random",
                    deal_changes=ch[["deal_id", "changed_at", "field", "value", "amount", "date"]]
                    .sort_values(["deal_id", "changed_at", "field"]).reset_index(drop=True))
    return ds


def _open_by_brute_force(ds, at) -> list[str]:
    """The deals open at ``at``, deal by deal: created before it, and the last of its status events
    (the log's status changes, then its final close) before it is not a close."""
    out = []
    log = ds.deal_changes[ds.deal_changes["field"] == "status"]
    for d in ds.deals.itertuples():
        if not d.created_at < at:
            continue
        events = sorted(zip(log.loc[log["deal_id"] == d.deal_id, "changed_at"], log.loc[log["deal_id"] == d.deal_id, "value"]))
        if pd.notna(d.closed_at):
            events.append((d.closed_at, str(d.status)))
        seen = [v for t, v in events if t < at]
        if not seen or seen[-1] == "open":
            out.append(d.deal_id)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), a=st.integers(0, 80), span=st.integers(0, 60),
       windowed=st.booleans(), reopened=st.booleans())
def test_waterfall_balances_on_random_data(seed, n, a, span, windowed, reopened):
    """Also with earlier closes and reopenings (status changes): the sets at start and end honour them."""
    ds = _random_dataset(seed, n, windowed, reopened)
    start = pd.Timestamp("2026-01-01") + pd.Timedelta(days=a)
    end = start + pd.Timedelta(days=span)
    window = ("2026-02-01", "2026-04-30") if windowed else None
    w = pipeline_waterfall(ds, start, end, window=window)
    m = w.movements.set_index("movement")["deals"]
    assert w.start_deals + m["created"] + m["pulled_in"] + m["reopened"] - m["pushed_out"] - m["won"] \
        - m["lost"] == w.end_deals
    # Amounts are whole hundreds: the float sums are exact.
    assert w.start_amount + w.movements["change"].sum() == w.end_amount
    assert (w.movements["amount"] >= 0).all()
    assert waterfall_fields(ds, start, end, window=window, label="x") == w.to_dict("x")
    if window is None:
        snap = snapshot(ds, end)
        assert snap["open_deals"].sum() == w.end_deals and snap["open_amount"].sum() == w.end_amount
        assert sorted(w.end_set["deal_id"]) == sorted(_open_by_brute_force(ds, end))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDataWarning)      # an interval without events is fine here
            weekly = weekly_snapshots(ds, fk.Period(start, end))
        for at, g in weekly.groupby("at"):
            assert g["open_deals"].tolist() == snapshot(ds, at)["open_deals"].tolist()
            assert g["open_amount"].sum() == pipeline_at(ds, at)["amount"].sum()
    else:
        known = fk.metrics.pipeline_at(ds, end)
        inside = known["expected_close_date"].between(pd.Timestamp("2026-02-01"), pd.Timestamp("2026-04-30"))
        assert inside.sum() == w.end_deals


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), a=st.integers(0, 100))
def test_without_changes_open_amounts_are_todays(seed, n, a):
    ds = _random_dataset(seed, n, False)
    plain = fk.Dataset(deals=ds.deals, stage_history=ds.stage_history, pipeline=ds.pipeline)
    at = pd.Timestamp("2026-01-01") + pd.Timedelta(days=a)
    open_now = plain.deals[(plain.deals["created_at"] < at)
                           & ~(plain.deals["closed_at"] < at)]
    assert snapshot(plain, at)["open_amount"].sum() == open_now["amount"].sum()
    assert pipeline_at(plain, at)["amount"].sum() == open_now["amount"].sum()


def test_waterfall_takeaway_states_the_check(hand):
    from funnelkit.takeaways import waterfall_takeaway
    w = pipeline_waterfall(hand, START, END, window="2026Q2")
    assert waterfall_takeaway(w, "USD") == (
        "The pipeline went from 11k USD (6 deals) to 6.9k USD (5 deals); most was added by pulled in "
        "(3.8k USD, 2 deals) and most went out as lost (3.5k USD, 1 deal). Check: start + movements = end "
        "adds up (5 deals = 5; 6.9k USD = 6.9k USD).")


def test_the_summary_leaves_out_the_period_window_when_no_expected_close_date_is_known(tmp_path):
    # Without an expected_close_date column and without a change log no deal's expected close is known:
    # the "period" window would hold 0 deals at every instant, an unknown shown as 0. The summary
    # leaves it out and says why; every open deal's waterfall does not depend on the dates.
    from hand_io import write_folder
    from movement_hand_data import DEALS, HEADER, HISTORY, STAGES

    from funnelkit.metrics import metrics_summary

    drop = HEADER.index("expected_close_date")
    undated = fk.load(write_folder(tmp_path / "undated", [r[:drop] + r[drop + 1:] for r in DEALS], HISTORY,
                                   STAGES, header=HEADER[:drop] + HEADER[drop + 1:]))
    dated = fk.load(write_movement(tmp_path / "dated", changes=None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = (metrics_summary(d, "2026Q2") for d in (undated, dated))
    assert [w["window"] for w in want["pipeline_waterfall"]] == ["all", "period"]
    assert [w["window"] for w in got["pipeline_waterfall"]] == ["all"]
    assert got["pipeline_waterfall"][0] == want["pipeline_waterfall"][0]
    assert got["pipeline_waterfall"][0]["start_deals"] == 7                # A, C, D, E, F, J, K open on 04-01
    assert got["pipeline_waterfall"][0]["start_amount"] == 1000 + 3000 + 800 + 3500 + 1500 + 600 + 1200
    assert [c["topic"] for c in got["caveats"]].count("movement") == 1
    assert "movement" not in [c["topic"] for c in want["caveats"]]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(MOVEMENTS),
                          st.one_of(st.none(), st.floats(0, 1e12, allow_nan=False))), max_size=40),
       st.randoms(use_true_random=False))
def test_movement_totals_are_exact_whatever_order_the_rows_come_in(rows, rnd):
    # waterfall_fields fetches the movements in no order: each total is the exact sum of its known
    # amounts (one rounding), the same for every order of the rows.
    import math

    from funnelkit.metrics.movement import _movement_totals, _with_change

    def totals(rs):
        moves = pd.DataFrame({"movement": pd.Categorical([m for m, _ in rs], categories=list(MOVEMENTS)),
                              "amount": np.array([np.nan if a is None else a for _, a in rs], dtype="float64")})
        return _movement_totals(_with_change(moves)).set_index("movement")

    got = totals(rows)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    pd.testing.assert_frame_equal(totals(shuffled), got)
    for m in MOVEMENTS:
        known = [a for k, a in rows if k == m and a is not None]
        assert got.loc[m, "amount"] == math.fsum(known)
        assert got.loc[m, "deals"] == sum(k == m for k, _ in rows)
        assert got.loc[m, "amount_unknown"] == sum(k == m and a is None for k, a in rows)


def test_movement_totals_that_overflow_a_float_are_infinite_not_an_error():
    # A database's deals have no amount ceiling: two amounts of 1e308 sum past the largest float.
    from funnelkit.metrics.movement import _movement_totals, _total, _with_change

    assert _total(pd.Series([1e308, 1e308, np.nan])) == np.inf
    assert np.isnan(_total(pd.Series([np.inf, -np.inf])))
    moves = pd.DataFrame({"movement": pd.Categorical(["created", "created"], categories=list(MOVEMENTS)),
                          "amount": [1e308, 1e308]})
    got = _movement_totals(_with_change(moves)).set_index("movement")
    assert got.loc["created", "amount"] == np.inf and got.loc["created", "deals"] == 2
