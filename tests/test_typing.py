"""The public API's type hints, checked by mypy: funnelkit ships py.typed, so a user's type checker
reads these hints; they must accept what the functions accept and refuse what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPECHECK = ROOT / "tests" / "typecheck"
#: Errors inside function bodies of other modules are not the public API's; its signatures are.
ARGS = ["--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
        "--cache-dir", str(ROOT / ".mypy_cache")]

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the [test] extra")


def _mypy(*paths: Path) -> tuple[str, int]:
    out, err, code = mypy_api.run([*ARGS, *map(str, paths)])
    return out + err, code


def test_py_typed_ships_with_the_package():
    assert (ROOT / "funnelkit" / "py.typed").is_file()


def test_the_public_api_type_checks_as_an_analyst_uses_it():
    out, code = _mypy(TYPECHECK / "public_api.py")
    assert code == 0, out


def test_the_modules_behind_the_api_type_check():
    out, code = _mypy(*(ROOT / "funnelkit" / name for name in ("period.py", "errors.py", "dataset.py",
                                                               "history.py", "__init__.py")))
    assert code == 0, out


def test_the_hints_refuse_wrong_calls():
    out, code = _mypy(TYPECHECK / "wrong.py")
    assert code == 1
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in lines] == ["6", "7", "8"], out
    assert 'Argument 2 to "funnel" has incompatible type "float"' in lines[0]
    assert 'Argument 1 to "funnel" has incompatible type "str"; expected "Dataset"' in lines[1]
    assert "Literal['ignore']" in lines[2]
