"""The command line, run for real in a subprocess: help, the scene file, JSON, and exit code 2 for bad input."""

import json
import os
import py_compile
import stat
import subprocess
import sys

import pytest


def derivanim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    # A narrow terminal: an error must stay on one line however wide the message is.
    env = {**os.environ, "COLUMNS": "40", "DERIVANIM_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "derivanim.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )


@pytest.mark.parametrize("args", [["--help"], ["make", "--help"]], ids=["derivanim", "make"])
def test_help_shows_examples(args):
    result = derivanim(*args)
    assert result.returncode == 0 and result.stderr == ""
    assert 'derivanim make "sin(x^2)"' in result.stdout


def test_make_help_explains_every_option():
    out = derivanim("make", "--help").stdout
    for option in ("--output", "--quality", "--format", "--filler", "--no-render", "--json", "--name"):
        assert option in out
    assert '"g(t) = t^3 - 2t"' in out and "--no-render" in out


def test_make_writes_the_scene(tmp_path):
    result = derivanim("make", "ln(x)", "--no-render", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    scene = tmp_path / "out" / "derivative.py"
    assert result.stdout.splitlines() == ["f'(x) = 1/x", f"scene: {scene}"]
    py_compile.compile(str(scene), doraise=True, cfile=str(tmp_path / "derivative.pyc"))
    assert "class DerivativeVisualization(Scene)" in scene.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(scene.stat().st_mode) == 0o666 & ~umask  # like any file the user writes, not private
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["derivative.py"]  # no temporary files left


def test_make_json(tmp_path):
    result = derivanim("make", "g(t) = t^3 - 2t", "--no-render", "--json", "-o", str(tmp_path), "--name", "cubic")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"slots", "derivative", "repairs", "scene", "video"} <= data.keys()
    assert data["slots"]["name"] == "g" and data["slots"]["variable"] == "t"
    assert data["derivative"] == "3*t**2 - 2"
    assert data["repairs"] == [] and data["video"] is None
    assert data["scene"] == str(tmp_path / "cubic.py") and (tmp_path / "cubic.py").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["make", "sin(x"], ["column 6"]),
        (["make", "floor(x)"], ["'floor'", "supported"]),
        (["make", "x + y"], ["more than one variable"]),
        (["make", "1/0"], ["division by zero"]),
        (["make", "ln(x)", "--quality", "z"], ["--quality", "'z'"]),
        (["make"], ["request"]),
        (["frobnicate"], ["frobnicate"]),
    ],
    ids=["unclosed", "unknown-function", "two-variables", "division-by-zero", "bad-quality", "no-request", "no-command"],
)
def test_invalid_input_exits_2_with_one_line(tmp_path, args, words):
    out = tmp_path / "out"
    result = derivanim(*args, "--no-render", "-o", str(out)) if args[0] == "make" and len(args) > 1 else derivanim(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    assert not out.exists() or not any(out.iterdir())
