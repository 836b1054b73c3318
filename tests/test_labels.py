"""Labels of a deal column (owner, source, ...): memory does not depend on the longest label.

pandas 2 turns a categorical into text through a fixed-width numpy array, rows x the longest label
x 4 bytes: one owner of 1 MB among 20,000 deals asked for 74 GiB (issue 9, item 8). Every place that
groups or counts deals by a label now works on the codes and converts each distinct label once.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.dataset import label_counts, label_text
from funnelkit.metrics._common import group_labels

from contract_cases import HISTORY_HEADER, PIPELINE, write_dataset

N = 20_000
LONG = "Chloe " + "x" * 1_000_000          # one owner name of 1 MB


def _owners() -> np.ndarray:
    owners = np.array(["Ann", "Bo", "Cy"], dtype=object)[np.arange(N) % 3]
    owners[7] = LONG
    return owners


@pytest.fixture(scope="module")
def long_label_ds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long") / "d"
    days = np.arange(N) % 80
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")
    status = np.array(["won", "lost", "open"], dtype=object)[np.arange(N) % 3]
    closed = np.where(status == "open", "", (created + pd.Timedelta(days=20)).strftime("%Y-%m-%d"))
    deals = pd.DataFrame({"deal_id": [f"D{i}" for i in range(N)], "created_at": created.strftime("%Y-%m-%d"),
                          "status": status, "closed_at": closed, "amount": (np.arange(N) % 7 + 1) * 100,
                          "source": "Web", "product": "Set", "owner": _owners()})
    write_dataset(folder, [], [HISTORY_HEADER, "D0,Lead,2024-01-01"], PIPELINE)
    deals.to_csv(folder / "deals.csv", index=False)
    return fk.load(folder)


def _peak_mb(fn) -> tuple[object, float]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_label_helpers_on_a_long_label():
    values = pd.Series(pd.Categorical(_owners()))
    for fn in (label_text, group_labels, label_counts):
        _, peak = _peak_mb(lambda: fn(values))
        assert peak < 10, f"{fn.__name__} used {peak:.0f} MB"
    text = label_text(values)
    assert text.dtype == object and text[7] is text[7] and text[7] == LONG and text[0] == "Ann"
    # Rows i % 3 = 0, 1, 2 are Ann (6,667), Bo (6,667 less row 7), Cy (6,666); row 7 is the long label.
    assert label_counts(values).to_dict() == {"Ann": 6667, "Bo": 6666, "Cy": 6666, LONG: 1}
    assert group_labels(pd.Series(pd.Categorical(["a", None]))).tolist() == ["a", "(not set)"]
    assert group_labels(pd.Series([" b ", None, ""])).tolist() == ["b", "(not set)", "(not set)"]


def test_metrics_by_owner_do_not_scale_with_the_longest_label(long_label_ds):
    from funnelkit.metrics import amount_by, days_to_close
    from funnelkit.views import slice_values

    ds, q = long_label_ds, fk.Period.quarter("2024Q1")
    assert ds.deals["owner"].tolist()[7] == LONG
    by_owner, peak = _peak_mb(lambda: amount_by(ds, q, by="owner"))
    assert peak < 40, f"amount_by used {peak:.0f} MB"
    # Hand count: deal i is won, lost, open for i % 3 = 0, 1, 2; Chloe's only deal is 7: lost.
    chloe = by_owner.set_index("owner").loc[LONG]
    assert (chloe["won_deals"], chloe["lost_deals"]) == (0, 1)
    dtc, peak = _peak_mb(lambda: days_to_close(ds, q, by="owner"))
    assert peak < 40, f"days_to_close used {peak:.0f} MB"
    assert dtc.set_index(["status", "owner"]).loc[("lost", LONG), "deals"] == 1
    values, peak = _peak_mb(lambda: slice_values(ds, "owner", max_slices=None))
    assert peak < 10 and values[-1] == LONG
