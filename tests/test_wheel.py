"""The package as a user installs it: build the wheel and the sdist, install the wheel into a fresh
venv with no repository beside it, and render a quarter with its `funnelkit report`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import funnelkit

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: int, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="the [test] extra installs build")
    out = tmp_path_factory.mktemp("dist")
    # A clean copy of the tracked files: what a clone (and the sdist) holds, nothing else.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            os.symlink(os.readlink(ROOT / name), target)
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(src)], out, 900)
    return out


def test_the_wheel_holds_the_notebooks_templates_and_py_typed(dist):
    wheel = next(dist.glob("funnelkit-*.whl"))
    assert wheel.name.startswith(f"funnelkit-{funnelkit.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("funnelkit/py.typed", "funnelkit/notebooks/quarterly_report.ipynb",
                   "funnelkit/notebooks/explore.ipynb", "funnelkit/importers/maps/maven_crm.yml"):
        assert needed in names, needed
    assert any(n.startswith("funnelkit/templates/funnelkit_offline/") for n in names)
    assert not any(n.startswith(("tests/", "data/", "notebooks/")) for n in names)


def test_the_sdist_has_the_same_version_and_the_sources(dist):
    sdist = next(dist.glob("funnelkit-*.tar.gz"))
    assert sdist.name == f"funnelkit-{funnelkit.__version__}.tar.gz"
    names = tarfile.open(sdist).getnames()
    top = f"funnelkit-{funnelkit.__version__}"
    for needed in ("pyproject.toml", "funnelkit/__init__.py", "funnelkit/py.typed",
                   "funnelkit/notebooks/quarterly_report.ipynb"):
        assert f"{top}/{needed}" in names, needed


def test_an_installed_wheel_renders_a_quarter_with_no_repo(dist, tmp_path):
    wheel = next(dist.glob("funnelkit-*.whl"))
    venv = tmp_path / "venv"
    # --system-site-packages gives the venv this interpreter's packages only where the base
    # interpreter has them; the wheel's own dependencies are installed by pip as a user's would be.
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path, 1800)
    _run([str(py), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], tmp_path, 300)
    # Nowhere near the repository: a data copy and an output folder in an empty working folder.
    work = tmp_path / "work"
    shutil.copytree(SAMPLE, work / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FUNNELKIT", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(py), "-c", "import funnelkit, sys; print(funnelkit.__file__, funnelkit.__version__)"],
                 work, 300, env).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and where[1] == funnelkit.__version__
    _run([str(venv / "bin" / "funnelkit"), "report", "data", "--quarter", "2026Q2", "--out", "out",
          "--timeout", "600"], work, 1800, env)
    html = (work / "out" / "2026Q2.html").read_text(encoding="utf-8")
    assert "2026Q2" in html and "Traceback" not in html
    text = re.sub(r"<[^>]+>", " ", html)
    won = _won_deals(work / "data", "2026-04-01", "2026-07-01")
    assert re.search(rf"\b{won}\b", text), f"won deals {won} not in the report"


def _won_deals(folder: Path, start: str, stop: str) -> int:
    import pandas as pd
    d = pd.read_csv(folder / "deals.csv")
    closed = pd.to_datetime(d["closed_at"], format="ISO8601")
    return int(((d["status"] == "won") & (closed >= start) & (closed < stop)).sum())
