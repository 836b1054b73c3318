"""Random small data sets for the property tests of the stage and time-in-stage metrics."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit.period import Period
from stages_hand_data import write_dataset

BASE = pd.Timestamp("2024-01-01")
_counter = itertools.count()


def _iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def random_dataset(data, tmp_path_factory):
    """Draw a data set (written and loaded through funnelkit.load) and a period."""
    n_st = data.draw(st.integers(2, 5), label="stages")
    stages = [f"S{i}" for i in range(n_st)]
    n_deals = data.draw(st.integers(1, 12), label="deals")
    hours = st.integers(0, 24 * 12)   # gaps up to 12 days, in hours; 0 makes ties
    deals, history = [], []
    for k in range(n_deals):
        created = BASE + pd.Timedelta(hours=data.draw(st.integers(0, 24 * 60)))
        path = data.draw(st.lists(st.integers(0, n_st - 1), min_size=int(k == 0), max_size=5))
        t = created
        for stage in path:
            t = t + pd.Timedelta(hours=data.draw(hours))
            history.append((f"D{k}", stages[stage], _iso(t)))
        status = data.draw(st.sampled_from(["open", "won", "lost"]))
        closed = "" if status == "open" else _iso(t + pd.Timedelta(hours=data.draw(hours)))
        amount = data.draw(st.one_of(st.integers(0, 5000).map(str), st.just("")))
        if status != "open" and amount == "":
            amount = "1"
        deals.append((f"D{k}", _iso(created), status, closed, amount,
                      data.draw(st.sampled_from(["Web", "Ref"])), "P", data.draw(st.sampled_from(["A", "B"]))))
    start = BASE + pd.Timedelta(days=data.draw(st.integers(0, 60)))
    end = start + pd.Timedelta(days=data.draw(st.integers(0, 40)))
    as_of = None
    if data.draw(st.booleans()):
        as_of = start + pd.Timedelta(hours=data.draw(st.integers(1, 24 * 60)))
    folder = tmp_path_factory.mktemp("rand") / f"d{next(_counter)}"
    ds = fk.load(write_dataset(folder, deals, history, stages))
    return ds, Period(start, end, as_of)
