"""Release shape: the wheel and sdist build, and the wheel works in a fresh environment.

This is CONTRIBUTING.md's release check, automated: ``python -m build`` on a copy of the
source tree, a new virtual environment (no access to this checkout or its packages)
with only the wheel installed (its dependencies come from the package index), then the
example from the README runs with it, from a folder outside the source tree.  Slow
(a minute or so, mostly the dependency installation); it runs in CI too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from learnexit import __version__

ROOT = Path(__file__).resolve().parents[1]
_IGNORE_EVERYWHERE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "*.egg-info",
    "__pycache__",
    "build",
    "dist",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "exports",
    "certificates",
    "results",
    "*.db",
    "*.so",
)


def _ignored(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: build and cache folders everywhere, and at the top the
    example a reader made with ``learnexit init --example demo`` (not ``learnexit/demo``)."""
    ignored = set(_IGNORE_EVERYWHERE(folder, names))
    if Path(folder) == ROOT and "demo" in names:
        ignored.add("demo")
    return ignored


TEMPLATES = {"certificate.html", "certificate.css", "report.html", "report.css"}

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LEARNEXIT_", "PYTHON"))}
    environ.update(LEARNEXIT_ACTOR="tester@example", **env)
    result = subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` on a clean copy of the source tree (the checkout stays untouched)."""
    try:
        import build  # noqa: F401
    except ImportError:
        message = "the `build` package is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("release")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_ignored)
    out = work / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=work)
    return out


def test_build_makes_a_wheel_and_an_sdist(dist: Path) -> None:
    """A wheel for this Python and platform, with the C speedups compiled in (this machine
    has a compiler; without one the build goes on and makes a pure-Python wheel)."""
    wheels = sorted(dist.glob("learnexit-*.whl"))
    sdists = sorted(dist.glob("learnexit-*.tar.gz"))
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert len(wheels) == 1 and re.fullmatch(
        rf"learnexit-{re.escape(__version__)}-{tag}-{tag}-\w+\.whl", wheels[0].name
    )
    assert [s.name for s in sdists] == [f"learnexit-{__version__}.tar.gz"]
    with zipfile.ZipFile(wheels[0]) as zf:
        speedups = sorted(n for n in zf.namelist() if n.startswith("learnexit/_speedups."))
    # the compiled module and its type stub; not the C source (that is in the sdist)
    assert len(speedups) == 2 and speedups[1] == "learnexit/_speedups.pyi", speedups
    assert re.fullmatch(r"learnexit/_speedups\.cpython-\d+-.+\.so", speedups[0]), speedups


def test_wheel_contents_and_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("learnexit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"learnexit-{__version__}.dist-info/METADATA").decode()
        entry_points = zf.read(f"learnexit-{__version__}.dist-info/entry_points.txt").decode()
    templates = {Path(n).name for n in names if n.startswith("learnexit/documents/templates/")}
    assert TEMPLATES <= templates, f"package data missing from the wheel: {TEMPLATES - templates}"
    assert "learnexit/py.typed" in names
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in names)
    assert f"Version: {__version__}" in metadata
    assert re.search(r"^Requires-Python: >=3\.11", metadata, re.MULTILINE)
    assert "learnexit = learnexit.cli:main" in entry_points


def test_sdist_contains_the_package_data(dist: Path) -> None:
    (sdist,) = dist.glob("learnexit-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {Path(n).name for n in tf.getnames() if "/learnexit/documents/templates/" in n}
        top = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert TEMPLATES <= names
    # the C speedups are built from source when installing from the sdist
    assert {"setup.py", "learnexit/_speedups.c"} <= top
    assert not any(n.endswith(".so") for n in top)


def test_wheel_installs_into_a_fresh_venv_and_runs_the_example(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("learnexit-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run([str(bindir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path, timeout=900)
    exe = str(bindir / "learnexit")

    # the installed copy is used, not this checkout
    where = _run([str(bindir / "python"), "-c", "import learnexit; print(learnexit.__file__)"], cwd=tmp_path)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    native = _run(
        [str(bindir / "python"), "-c", "from learnexit.exporters import speedups; print(speedups.native)"], cwd=tmp_path
    )
    assert "learnexit._speedups" in native.stdout and str(venv) in native.stdout

    assert _run([exe, "--version"], cwd=tmp_path).stdout.splitlines() == [f"learnexit {__version__}", "C speedups: on"]
    _run([exe, "init", "--example", "demo"], cwd=tmp_path)
    demo = tmp_path / "demo"
    data = json.loads(_run([exe, "inspect", "acme", "--json"], cwd=demo).stdout)
    assert data["customer"] == "acme" and data["unclassified"] == []
    # the document templates are found in the installed package: a PDF export works
    result = json.loads(_run([exe, "export", "acme", "--format", "pdf,csv", "--json"], cwd=demo).stdout)
    package = Path(result["path"])
    assert any(package.glob("data/documents/**/*.pdf"))
    _run([exe, "verify", str(package)], cwd=demo)
