"""funnelkit: where a sales pipeline leaks, stalls and earns, from a CRM export.

>>> import funnelkit as fk
>>> ds = fk.load("data/sample")            # doctest: +SKIP
"""

from .contract import Pipeline
from .dataset import Dataset, MixedCurrencyError
from .loading import load, validate
from .validation import DataError, Problem, ValidationReport

__version__ = "0.1.0"

__all__ = ["load", "validate", "Dataset", "MixedCurrencyError", "Pipeline", "DataError", "Problem", "ValidationReport"]
