"""The built wheel carries its data files and works outside the source tree."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DATA_FILES = ["derivanim/templates/derivative_visualization.py.j2", "derivanim/grammars/expression.lark",
              "derivanim/web/templates/index.html", "derivanim/web/static/katex/katex.min.js",
              "derivanim/web/static/katex/fonts/KaTeX_Main-Regular.woff2"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # No isolation: the build backend (hatchling, in the dev extras) comes from the venv, not from the network.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheels = list(out.glob("derivanim-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_the_data_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for data_file in DATA_FILES:
        assert data_file in names
    assert "derivanim/cli.py" in names
    assert not any(name.startswith(("tests/", "derivanim/tests/")) for name in names)


def test_installed_wheel_works_outside_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    for data_file in DATA_FILES:
        assert (target / data_file).is_file()
    program = (
        "import derivanim, sys\n"
        "from derivanim import fill\n"
        "from derivanim.resources import resource_path\n"
        "print(derivanim.__file__)\n"
        "print(resource_path('templates', 'derivative_visualization.py.j2'))\n"
        "print(resource_path('grammars', 'expression.lark'))\n"
        "code = fill('sin(x^2)').code\n"
        "assert 'class DerivativeVisualization(Scene)' in code\n"
        "print('ok')\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    package, template, grammar, ok = result.stdout.splitlines()
    # The installed copy was used, with its own data files, not the source tree's.
    for path in (package, template, grammar):
        assert Path(path).is_relative_to(target), path
    assert ok == "ok"
