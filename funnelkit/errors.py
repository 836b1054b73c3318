"""funnelkit's own errors and warnings: one base of each, so a caller can catch or filter them all.

Every error funnelkit raises on purpose derives from :class:`FunnelkitError`; those that were
``ValueError`` before keep that base too (``except ValueError`` still works). Every warning derives
from :class:`FunnelkitWarning`, so a notebook can turn exactly funnelkit's warnings into notes, or
silence them, by category:

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always", FunnelkitWarning)
...     warnings.warn("no deal was created in 2030Q1", NoDataWarning)
>>> [type(w.message).__name__ for w in caught]
['NoDataWarning']
>>> issubclass(ArgumentError, FunnelkitError) and issubclass(ArgumentError, ValueError)
True

The error classes of the other modules (``DataError``, ``MixedCurrencyError``, ``NotEnoughHistory``,
``ImportProblem``, ``ReportError``) subclass :class:`FunnelkitError` where they are defined.
"""

from __future__ import annotations

__all__ = ["FunnelkitError", "ArgumentError", "UnknownColumnError", "FunnelkitWarning", "NoDataWarning",
           "NoMatchWarning", "TooLittleDataWarning"]


class FunnelkitError(Exception):
    """Base of every error funnelkit raises on purpose (bad data, bad argument, failed render)."""


class ArgumentError(FunnelkitError, ValueError):
    """An argument funnelkit cannot use: a period, a column name, an option value.

    The message names the argument, the value and what is accepted.
    """


class UnknownColumnError(ArgumentError, KeyError):
    """A column name the deals do not have; the message lists the ones they do have.

    Also a ``KeyError`` (what a missing column raised before).
    """

    __str__ = Exception.__str__   # the message as written, not KeyError's quoted repr


class FunnelkitWarning(UserWarning):
    """Base of every warning funnelkit gives (results that rest on too little or no data)."""


class NoDataWarning(FunnelkitWarning):
    """The period holds no data: nothing was created, closed or moved stage in it."""


class NoMatchWarning(FunnelkitWarning):
    """A filter value matches no deal (a typo, or a label that is not in the data)."""


class TooLittleDataWarning(FunnelkitWarning, RuntimeWarning):
    """A result rests on too little data to be estimated (e.g. no deal closed before ``as_of``).

    Also a ``RuntimeWarning``, the category these warnings had before.
    """
