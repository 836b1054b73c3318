"""Shared fixtures: paths to the shipped sample data and the real data sets in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
# ../shared/data/real beside the project, or $FUNNELKIT_REAL_DATA (e.g. from a git worktree elsewhere)
REAL = Path(os.environ.get("FUNNELKIT_REAL_DATA") or ROOT.parent / "shared" / "data" / "real")

# Fixture notebooks are inputs of the render tests, not notebooks for nbval to execute.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_ds():
    import funnelkit as fk
    return fk.load(SAMPLE)


@pytest.fixture(scope="session")
def real_path() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data sets not found at {REAL} (they live in ../shared/data/real beside the repo)")
    return REAL


@pytest.fixture(scope="session")
def spark_session():
    """A local[2] Spark session for the cross-engine tests (tests/engines.py), UTC, no web UI."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("funnelkit-tests")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_backend(spark_session):
    import ibis

    return ibis.pyspark.connect(spark_session)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
