"""funnelkit: where a sales pipeline leaks, stalls and earns, from a CRM export.

One import gives everything::

    import funnelkit as fk
    ds = fk.load("data/sample")                 # validated; a clear error on bad input
    ds = fk.connect("postgres://...", deals="deals", stage_history="stage_history",
                    pipeline="pipeline.yml")    # or a data set held in a database
    fk.metrics.funnel(ds, "2026Q2")             # every metric under fk.metrics
    fk.plot.funnel_plot(fk.metrics.funnel(ds, "2026Q2"))   # every chart under fk.plot

>>> import funnelkit as fk
>>> fk.Period.quarter("2026Q2").label
'2026Q2'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import metrics
from .contract import Pipeline
from .dataset import Dataset, MixedCurrencyError
from .engine import connect
from .errors import FunnelkitError, FunnelkitWarning
from .loading import load, validate
from .period import Period
from .validation import DataError, Problem, ValidationReport

if TYPE_CHECKING:  # imported on first use: matplotlib and seaborn are slow to import
    from . import plot

__version__ = "0.1.0"

__all__ = ["load", "connect", "validate", "Dataset", "Period", "Pipeline", "metrics", "plot",
           "FunnelkitError", "FunnelkitWarning", "MixedCurrencyError", "DataError", "Problem",
           "ValidationReport", "__version__"]


def __getattr__(name: str):
    if name == "plot":
        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'funnelkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"plot"})
