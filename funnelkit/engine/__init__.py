"""The metric core's engine: a data set as Ibis tables, run where the data is.

A loaded folder (:func:`funnelkit.load`) runs on in-process DuckDB with nothing to set up; a data
set held in a database is opened with :func:`connect` (an Ibis backend or a URL, and the names of
its tables). Either way the metrics see the same :class:`Tables`: ``deals``, the normalised stage
``entries`` and the ``visits`` built from them (:mod:`funnelkit.engine.views`), and results come
back as small pandas DataFrames. Engines and their limits: ``docs/engines.md``.

>>> import funnelkit as fk
>>> from funnelkit.engine import tables_of
>>> callable(tables_of) and callable(fk.connect)
True
"""

from __future__ import annotations

from .connect import connect
from .tables import Tables, tables_of

__all__ = ["Tables", "tables_of", "connect"]
