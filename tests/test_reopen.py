"""Earlier closes and reopenings (status changes in deal_changes.csv): the status as known at an
instant, the open pipeline, the waterfall's reopened movement and the loader's checks, on the hand data
of reopen_hand_data.py (the worked example of docs/metrics.md section 9)."""

from __future__ import annotations

import pandas as pd
import pytest
from engines import ENGINES, with_change_log
from reopen_hand_data import CHANGES, END, START, write_reopen

import funnelkit as fk
from funnelkit.changes import closed_spells, known_at
from funnelkit.errors import TooLittleDataWarning
from funnelkit.history import deals_as_of, stage_at
from funnelkit.metrics import pipeline_at, pipeline_waterfall, snapshot, stage_movement, weekly_snapshots
from funnelkit.metrics.movement import MOVEMENTS


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return fk.load(write_reopen(tmp_path_factory.mktemp("reopen") / "hand"))


@pytest.fixture(scope="module", params=ENGINES)
def on_each(request, tmp_path_factory):
    """The hand data on each engine, its change log a table of the engine too."""
    return with_change_log(request.param, write_reopen(tmp_path_factory.mktemp("reopen_e") / "hand"), request)


def _status(ds, at):
    return dict(zip(ds.deals["deal_id"], known_at(ds, "status", at)))


def _moves(w):
    m = w.movements.set_index("movement")
    return {k: (int(m.loc[k, "deals"]), float(m.loc[k, "amount"])) for k in MOVEMENTS}


def _list(w):
    return [(r.movement, r.deal_id, str(pd.Timestamp(r.at).date()), r.amount) for r in w.deals.itertuples()]


def test_status_as_known_at_an_instant(hand):
    # Before any status change a deal is open (not the first change's value); events at T are not seen.
    assert _status(hand, "2026-03-01")["V"] == "open"
    assert _status(hand, "2026-03-01 00:00:01")["V"] == "lost"
    assert _status(hand, "2026-04-10")["P"] == "open" and _status(hand, "2026-04-11")["P"] == "lost"
    assert _status(hand, "2026-05-02")["P"] == "open"
    # The final close comes from deals.csv.
    assert _status(hand, "2026-06-10")["R"] == "open" and _status(hand, "2026-06-11")["R"] == "won"
    spells = closed_spells(hand)
    assert [(hand.deals["deal_id"][r], str(c.date()), str(o.date()), s) for r, c, o, s in spells.itertuples(index=False)] \
        == [("P", "2026-04-10", "2026-05-01", "lost"), ("Q", "2026-03-15", "2026-04-20", "lost"),
            ("R", "2026-03-25", "2026-05-05", "lost"), ("S", "2026-05-15", "2026-06-01", "lost"),
            ("V", "2026-03-01", "2026-07-10", "lost")]


def test_waterfall_with_earlier_closes_and_reopenings_by_hand(on_each):
    w = pipeline_waterfall(on_each, START, END)
    assert w.start_set["deal_id"].tolist() == ["P", "S", "T"] and w.start_amount == 1800.0
    assert w.end_set["deal_id"].tolist() == ["P", "Q", "S", "T"] and w.end_amount == 3700.0
    assert _moves(w) == {"created": (0, 0.0), "pulled_in": (0, 0.0), "reopened": (4, 5400.0),
                         "amount_up": (1, 200.0), "amount_down": (0, 0.0), "pushed_out": (0, 0.0),
                         "won": (1, 2000.0), "lost": (2, 1700.0)}
    # P lost and reopened inside the interval (two movements); Q closed before start, reopened with its
    # amount as known then (1500, changed while closed); R reopened then won; S: the amount change at the
    # instant of its close comes first (amount up 200, then lost with 700), and the amount change at the
    # instant of its reopening too (reopened with 900).
    assert _list(w) == [
        ("lost", "P", "2026-04-10", 1000.0), ("reopened", "Q", "2026-04-20", 1500.0),
        ("reopened", "P", "2026-05-01", 1000.0), ("reopened", "R", "2026-05-05", 2000.0),
        ("amount_up", "S", "2026-05-15", 200.0), ("lost", "S", "2026-05-15", 700.0),
        ("reopened", "S", "2026-06-01", 900.0), ("won", "R", "2026-06-10", 2000.0)]
    d = w.deals.set_index(["movement", "deal_id"])
    assert d.loc[("lost", "S"), "stage"] == "Qualified"        # the stage entry at 05-15 comes before the close
    assert d.loc[("reopened", "Q"), ["amount_before", "amount_after"]].fillna(-1).tolist() == [-1, 1500.0]
    assert w.balance == {"deals": 4, "end_deals": 4, "amount": 3700.0, "end_amount": 3700.0, "balanced": True}
    assert w.to_dict("all")["movements"]["reopened"] == {"deals": 4, "amount": 5400.0, "amount_unknown": 0}


def test_the_open_pipeline_honours_earlier_closes(on_each):
    # 04-15: P (lost 04-10), Q, R, V closed by earlier closes; S and T open.
    assert pipeline_at(on_each, "2026-04-15")["deal_id"].tolist() == ["S", "T"]
    snap = snapshot(on_each, "2026-04-15")
    assert snap["open_deals"].tolist() == [2, 0, 0] and snap["open_amount"].tolist() == [800.0, 0.0, 0.0]
    # At the instant of P's close it is not yet seen.
    assert snapshot(on_each, "2026-04-10")["open_deals"].sum() == 3
    # 06-15: P, Q, T in Lead; S in Qualified (reopened with 900); R won on 06-10.
    snap = snapshot(on_each, "2026-06-15")
    assert snap["open_deals"].tolist() == [3, 1, 0] and snap["open_amount"].tolist() == [2800.0, 900.0, 0.0]
    for at in ("2026-04-15", "2026-05-10", "2026-06-15", END):
        s, p = snapshot(on_each, at), pipeline_at(on_each, at)
        assert s["open_deals"].sum() == len(p) and s["open_amount"].sum() == p["amount"].sum()
    weekly = weekly_snapshots(on_each, fk.Period.quarter("2026Q2"))
    for at, g in weekly.groupby("at"):
        assert g["open_deals"].tolist() == snapshot(on_each, at)["open_deals"].tolist()
        assert g["open_amount"].tolist() == snapshot(on_each, at)["open_amount"].tolist()


def test_stage_to_stage_view_names_the_status_at_end(on_each):
    t = stage_movement(on_each, START, "2026-05-10")
    got = {(r["from"], r["to"]): r["deals"] for _, r in t.iterrows()}
    # P: lost and reopened (Lead at both ends); S lost on 05-15 is not reached yet; Q, R reopened.
    assert got == {("(entered)", "Lead"): 2, ("Lead", "Lead"): 3}
    t = stage_movement(on_each, START, "2026-05-20 00:00:01")
    got = {(r["from"], r["to"]): r["deals"] for _, r in t.iterrows()}
    # S lost on 05-15 (not reopened yet: its status then); R in Proposal since 05-20.
    assert got == {("(entered)", "Lead"): 1, ("(entered)", "Proposal"): 1, ("Lead", "Lead"): 2,
                   ("Lead", "lost"): 1}


def test_won_lost_metrics_use_the_final_close(hand):
    # P's and S's earlier closes (lost in 2026Q2) are history: the quarter closed one deal, R, won.
    closed = fk.metrics.closed_in_period(hand, "2026Q2")
    assert closed["deal_id"].tolist() == ["R"]
    plain = fk.load(write_reopen(hand.path.parent / "plain", changes=[c for c in CHANGES if c[2] != "status"]))
    assert fk.metrics.closed_in_period(plain, "2026Q2")["deal_id"].tolist() == ["R"]


def test_without_status_changes_nothing_is_reopened(hand):
    plain = fk.load(write_reopen(hand.path.parent / "plain2", changes=[c for c in CHANGES if c[2] != "status"]))
    w = pipeline_waterfall(plain, START, END)
    # Every deal but R is open throughout; R is won on 06-10; S's amount moves twice.
    assert _moves(w) == {"created": (0, 0.0), "pulled_in": (0, 0.0), "reopened": (0, 0.0),
                         "amount_up": (2, 400.0), "amount_down": (0, 0.0), "pushed_out": (0, 0.0),
                         "won": (1, 2000.0), "lost": (0, 0.0)}
    assert (w.start_deals, w.start_amount, w.end_deals, w.end_amount) == (6, 5900.0, 5, 4300.0)
    assert closed_spells(plain).empty


def _problems(folder):
    with pytest.raises(fk.DataError) as err:
        fk.load(folder)
    return [str(p).split("deal_changes.csv, ")[1] for p in err.value.problems]


def test_status_change_problems_are_named(tmp_path):
    rows = [
        ("T", "2026-04-01", "status", "closed"),     # 2: not open/won/lost
        ("T", "2026-02-01", "status", "lost"),       # 3: before created_at (and T's others go with it)
        ("R", "2026-06-11", "status", "open"),       # 4: after the final close
        ("P", "2026-04-10", "status", "lost"),       # 5
        ("P", "2026-04-12", "status", "won"),        # 6: a close of a closed deal
        ("P", "2026-05-01", "status", "open"),       # 7
        ("Q", "2026-03-15", "status", "open"),       # 8: a reopening of a deal never closed
        ("V", "2026-03-01", "status", "lost"),       # 9: the last status change leaves V lost, deals.csv open
        ("S", "2026-04-01", "status", "Lost"),       # 10 (any case)
        ("S", "2026-04-02", "status", "open"),       # 11
        ("S", "2026-04-03", "status", "open"),       # 12: a reopening of an open deal
    ]
    got = _problems(write_reopen(tmp_path / "bad", changes=rows))
    together = ("rejected with the deal's other status changes (line {} has a problem): a deal's status "
                "changes are kept or rejected together")
    assert got == [
        "line 2, column 'value', value 'closed': unknown status (expected open, won or lost, in any case)",
        "line 3, column 'changed_at', value '2026-02-01': change before the deal's created_at (2026-03-01)",
        "line 4, column 'changed_at', value '2026-06-11': change after the deal's closed_at (2026-06-10): a "
        "closed deal keeps the values it closed with, which are its values in deals.csv",
        "line 5, column 'value', value 'lost': " + together.format(6),
        "line 6, column 'value', value 'won': a close of a deal already closed (by line 5): a reopening (open) "
        "must come between two closes",
        "line 7, column 'value', value 'open': " + together.format(6),
        "line 8, column 'value', value 'open': a reopening of a deal that was never closed (a deal is open "
        "from its creation: its first status change is a close, won or lost)",
        "line 9, column 'value', value 'lost': the deal's last status change (lost) disagrees with deals.csv "
        "status (open): deals.csv holds the final state, so the last status change of a deal is a reopening "
        "(open), before its final close when it is closed",
        "line 10, column 'value', value 'Lost': " + together.format(12),
        "line 11, column 'value', value 'open': " + together.format(12),
        "line 12, column 'value', value 'open': a reopening of a deal already open (reopened on line 11)",
    ]


def test_a_closed_deal_needs_a_reopening_before_its_final_close(tmp_path):
    # R is won on 06-10 (deals.csv) after a lost on 03-25 with no reopening between.
    got = _problems(write_reopen(tmp_path / "r", changes=[("R", "2026-03-25", "status", "lost")]))
    assert got == [
        "line 2, column 'value', value 'lost': the deal's last status change (lost) disagrees with deals.csv "
        "status (won): deals.csv holds the final state, so the last status change of a deal is a reopening "
        "(open), before its final close when it is closed"]
    # A status change at closed_at must be the final close itself.
    got = _problems(write_reopen(tmp_path / "r2", changes=[("R", "2026-03-25", "status", "lost"),
                                                          ("R", "2026-05-05", "status", "open"),
                                                          ("R", "2026-06-10", "status", "lost")]))
    assert got[-1] == ("line 4, column 'value', value 'lost': a status change at the deal's closed_at must be "
                       "its final close, won as in deals.csv")
    # The final close repeated at closed_at is allowed.
    ds = fk.load(write_reopen(tmp_path / "ok", changes=[("R", "2026-03-25", "status", "lost"),
                                                        ("R", "2026-05-05", "status", "open"),
                                                        ("R", "2026-06-10", "status", "won")]))
    w = pipeline_waterfall(ds, START, END)
    assert _moves(w)["reopened"] == (1, 2000.0) and _moves(w)["won"] == (1, 2000.0)


def test_lenient_mode_keeps_or_rejects_a_deals_status_changes_together(tmp_path):
    rows = list(CHANGES) + [("T", "2026-04-01", "status", "lost"),       # 17
                            ("T", "2026-04-05", "status", "gone"),       # 18: bad value
                            ("T", "2026-04-09", "status", "open")]       # 19
    folder = write_reopen(tmp_path / "lenient", changes=rows)
    ds = fk.load(folder, errors="report")
    acc = [a for k, a in ds.report.accounts.items() if k.endswith("deal_changes.csv")][0]
    assert (acc.read, acc.loaded, acc.rejected) == (18, 15, 3)
    rejected = ds.report.rejected.set_index("line")["reasons"].to_dict()
    assert sorted(rejected) == [17, 18, 19]
    assert rejected[17] == ("value: rejected with the deal's other status changes (line 18 has a problem): a "
                            "deal's status changes are kept or rejected together")
    assert _status(ds, "2026-04-02")["T"] == "open"      # T as without status changes
    assert pipeline_waterfall(ds, START, END).balance["balanced"]


def test_landing_coverage_pipeline_honours_earlier_closes(hand):
    # At 04-15 the open pipeline is S and T (800); P, Q, R, V are closed by earlier closes then.
    c = fk.metrics.coverage(hand, "2026Q2", at="2026-04-15", target=10_000)
    assert (c["pipeline_deals"], c["pipeline"]) == (2, 800.0)
    assert c["pipeline"] == pipeline_at(hand, "2026-04-15")["amount"].sum()


# Per-deal views at an instant inside an earlier closed spell (engine.views.closed_then), on every engine.
# At 04-15: P (lost 04-10 until 05-01), Q (03-15 until 04-20), R (03-25 until 05-05) and V (03-01 until
# 07-10) are closed by earlier closes; S (Cy, 500 as known then) and T (Bo, 300) are open. At 06-20: R is
# won (its final close, 06-10); V is still in its spell; P (Ann, 1000), Q (Bo, 1500), S (Cy, 900 since
# 06-01, in Qualified since 05-15) and T (Bo, 300) are open.

def test_status_as_of_honours_earlier_closes(on_each):
    d = deals_as_of(on_each, "2026-04-15")
    assert dict(zip(d["deal_id"], d["status_as_of"].astype(str))) == {
        "P": "lost", "Q": "lost", "R": "lost", "S": "open", "T": "open", "V": "lost"}
    assert d["closed_as_of"].isna().all()          # closed_as_of is the final close only: none seen
    d = deals_as_of(on_each, "2026-06-20")
    assert dict(zip(d["deal_id"], d["status_as_of"].astype(str))) == {
        "P": "open", "Q": "open", "R": "won", "S": "open", "T": "open", "V": "lost"}


def _by_owner(ds, period):
    a = fk.metrics.amount_by(ds, period, by="owner")
    return {r.owner: (r.won_deals, r.lost_deals, r.open_deals, r.open_amount) for r in a.itertuples()}


def test_open_amount_per_group_leaves_out_closed_spells(on_each):
    # 04-15: no final close seen; only S and T open (before: P, Q, R, V too: Ann 3000, Bo 1800, Cy 1100).
    assert _by_owner(on_each, fk.Period("2026-04-01", "2026-04-14")) == {"Bo": (0, 0, 1, 300.0),
                                                                          "Cy": (0, 0, 1, 500.0)}
    # 06-20: R won 2000 in the period (Ann); V (Cy, 600) is not open (before: Cy 2 deals, 1500).
    assert _by_owner(on_each, fk.Period("2026-04-01", "2026-06-30", as_of="2026-06-20")) == {
        "Ann": (1, 0, 1, 1000.0), "Bo": (0, 0, 2, 1800.0), "Cy": (0, 0, 1, 900.0)}


def test_stuck_deals_and_stage_at_leave_out_closed_spells(on_each):
    # Lead's ended visits by 06-20: R 03-10 -> 05-20 and S 03-05 -> 05-15, 71 days each: the threshold.
    # In Lead since: Q 02-01 (139 days), P and T 03-01 (111); V (since 02-10, 130 days) is closed then.
    s = fk.metrics.stuck_deals(on_each, "2026-06-20")
    assert list(zip(s["deal_id"], s["days_in_stage"], s["threshold_days"])) == [
        ("Q", 139.0, 71.0), ("P", 111.0, 71.0), ("T", 111.0, 71.0)]
    cur = stage_at(on_each, "2026-06-20")
    assert list(zip(cur["deal_id"], cur["stage"].astype(str))) == [("P", "Lead"), ("Q", "Lead"), ("S", "Qualified"),
                                                                  ("T", "Lead")]


def test_win_forecast_open_deals_leave_out_closed_spells(on_each):
    fc = fk.metrics.win_forecast(on_each, "2026-06-20")
    assert sorted(zip(fc["deal_id"], fc["amount"])) == [("P", 1000.0), ("Q", 1500.0), ("S", 900.0), ("T", 300.0)]
    with pytest.warns(TooLittleDataWarning):                   # no deal closed (finally) before 04-15
        fc = fk.metrics.win_forecast(on_each, "2026-04-15")
    assert sorted(zip(fc["deal_id"], fc["amount"])) == [("S", 500.0), ("T", 300.0)]
