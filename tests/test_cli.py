"""The command line, run for real in a subprocess: help, the files and their names, JSON (results and errors), exit
code 2 for bad input, render progress, and the preview."""

import json
import os
import py_compile
import re
import stat
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args", [["--help"], ["make", "--help"]], ids=["derivanim", "make"])
def test_help_shows_examples(args, derivanim):
    result = derivanim(*args)
    assert result.returncode == 0 and result.stderr == ""
    assert 'derivanim make "sin(x^2)"' in result.stdout


def test_make_help_explains_every_option(derivanim):
    out = derivanim("make", "--help").stdout
    for option in ("--output", "--quality", "--format", "--filler", "--no-render", "--json", "--preview"):
        assert option in out
    assert '"g(t) = t^3 - 2t"' in out and "--no-render" in out


def test_make_writes_the_scene(tmp_path, derivanim):
    result = derivanim("make", "ln(x)", "--no-render", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    scene = tmp_path / "out" / "ln_x.py"  # named after the function
    assert result.stdout.splitlines() == ["f'(x) = 1/x", f"scene: {scene}"]
    py_compile.compile(str(scene), doraise=True, cfile=str(tmp_path / "ln_x.pyc"))
    assert "class DerivativeVisualization(Scene)" in scene.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(scene.stat().st_mode) == 0o666 & ~umask  # like any file the user writes, not private
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ln_x.py"]  # no temporary files left


def test_make_json(tmp_path, derivanim):
    result = derivanim("make", "g(t) = t^3 - 2t", "--no-render", "--json", "-o", str(tmp_path / "cubic.py"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"slots", "derivative", "repairs", "scene", "video", "subtitles", "removed"} <= data.keys()
    assert data["slots"]["name"] == "g" and data["slots"]["variable"] == "t"
    assert data["derivative"] == "3t^2 - 2" and data["derivative_sympy"] == "3*t**2 - 2"
    assert data["repairs"] == [] and data["video"] is None and data["subtitles"] is None and data["removed"] == []
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
def test_invalid_input_exits_2_with_one_line(tmp_path, args, words, derivanim):
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


@pytest.mark.parametrize("request_text, stem", [
    ("sin(x^2)", "sin_x_2"),
    ("derivative of sin(x^2)", "sin_x_2"),  # a phrasing: named after the function it asks about
    ("g(t) = t^3 - 2t", "t_3_minus_2t"),
    ("x^2-1", "x_2_minus_1"),
])
def test_files_are_named_after_the_function(tmp_path, request_text, stem, derivanim):
    result = derivanim("make", request_text, "--no-render", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"scene: {tmp_path / stem}.py"
    assert [p.name for p in tmp_path.iterdir()] == [f"{stem}.py"]


def test_a_file_given_with_o_names_the_outputs(tmp_path, derivanim):
    result = derivanim("make", "ln(x)", "--no-render", "-o", str(tmp_path / "talk" / "log.gif"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"scene: {tmp_path / 'talk' / 'log.py'}"
    conflict = derivanim("make", "ln(x)", "--no-render", "--format", "mp4", "-o", str(tmp_path / "log.gif"))
    assert conflict.returncode == 2 and conflict.stderr.count("\n") == 1 and "gif" in conflict.stderr


def test_a_new_scene_removes_the_video_of_the_one_it_replaces(tmp_path, derivanim):
    (tmp_path / "x_2.py").write_text("# a scene from before\n")
    (tmp_path / "x_2.mp4").write_bytes(b"a video of the scene from before")
    result = derivanim("make", "x^2", "--no-render", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "removed:" in result.stderr and "x_2.mp4" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_2.py"]
    assert "class DerivativeVisualization" in (tmp_path / "x_2.py").read_text()


@pytest.mark.parametrize("args, exit_code, words", [
    (["make", "sin(x", "--no-render"], 2, ["column 6"]),
    (["make", "floor(x)", "--no-render"], 2, ["'floor'"]),
    (["make", "x^2", "--quality", "z"], 2, ["--quality", "'z'"]),
    (["make", "x^2", "--no-render", "--filler", "baseline"], 2, ["--adapter"]),
    (["make", "--json"], 2, ["request"]),
], ids=["unclosed", "unknown-function", "usage", "baseline-without-adapter", "no-request"])
def test_json_errors_are_json_with_the_same_exit_codes(tmp_path, args, exit_code, words, derivanim):
    result = derivanim(*args, "--json", "-o", str(tmp_path)) if len(args) > 2 else derivanim(*args)
    assert result.returncode == exit_code
    assert result.stderr == ""
    error = json.loads(result.stdout)
    assert error.keys() == {"error", "exit_code"} and error["exit_code"] == exit_code
    for word in words:
        assert word in error["error"]


def test_a_failed_render_with_json_is_json_exit_1_and_leaves_nothing(tmp_path):
    """PATH holds only python: Manim starts but finds no `latex` for the title."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8"}
    result = subprocess.run([sys.executable, "-m", "derivanim.cli", "make", "x^2", "-q", "l", "--json", "-o", "out"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)
    assert error["exit_code"] == 1 and error["error"].startswith("Manim failed: ") and "latex" in error["error"]
    assert "Played" not in error["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x_2.render.log"]  # no scene without its video


def test_an_interrupt_with_json_is_json_exit_130(monkeypatch, capsys):
    from derivanim import api, cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "fill", interrupted)
    assert cli.main(["make", "x^2", "--no-render", "--json"]) == 130
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "interrupted", "exit_code": 130} and captured.err == ""


@pytest.mark.slow
def test_a_gif_at_low_quality_with_subtitles_progress_and_a_preview_nowhere_to_show(tmp_path):
    """The README's GIF example, for real: a real GIF of many frames, the subtitles of the eight phases beside
    it, one progress line per phase (stderr is not a terminal here), and --preview without a display says where
    the video is."""
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "derivanim.cli", "make", "x^2", "-q", "l", "--format", "gif",
                             "--preview", "-o", "out"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["x_2.gif", "x_2.py", "x_2.srt"]
    assert result.stdout.splitlines()[-3:] == ["scene: out/x_2.py", "video: out/x_2.gif", "subtitles: out/x_2.srt"]

    gif = out / "x_2.gif"
    assert gif.read_bytes()[:6] == b"GIF89a"
    import av

    with av.open(str(gif)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (854, 480)
        assert sum(1 for _ in container.decode(stream)) > 15 * 20  # eight phases at 15 fps: well over 20 s

    import srt

    cues = list(srt.parse((out / "x_2.srt").read_text()))
    assert len(cues) == 8 and cues[0].start.total_seconds() == 0
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:])) and all(cue.end > cue.start for cue in cues)
    assert "derivative of f(x)" in cues[0].content and "tangent at x = " in cues[3].content
    assert "traces the graph of f'" in cues[7].content

    lines = result.stderr.splitlines()
    phases = [line.split(",")[0] for line in lines if line.startswith("phase ")]
    assert phases == ["phase 1/8 Title", "phase 2/8 Axes and graph", "phase 3/8 Secant to tangent",
                      "phase 4/8 Tangent at x0", "phase 5/8 Derivation", "phase 6/8 Result",
                      "phase 7/8 Derivative graph", "phase 8/8 Sweep"]
    assert all(re.search(r"\d+ of (\d+) animations done", line) for line in lines if line.startswith("phase "))
    assert any("left" in line for line in lines if line.startswith("phase 8/8"))
    assert any(line.startswith("converting to GIF") for line in lines)
    assert lines[-1] == "preview: no viewer can open it here (no display); the video is at out/x_2.gif"


def test_the_baseline_scene_is_written_as_emitted_and_named_after_the_request(tmp_path, monkeypatch, capsys):
    from derivanim import baseline, cli

    emitted = "from manim import *\n# whatever the free-form model wrote, unchecked\n"
    monkeypatch.setattr(baseline, "generate_scene", lambda request, adapter: baseline.SceneGeneration(
        request=request, text=emitted, tokens=17, seconds=0.5, finished=True, model="a stand-in"))
    code = cli.main(["make", "Teach the chain rule with sin(x^2)", "--filler", "baseline", "--adapter", "runs/freeform",
                     "--no-render", "--json", "-o", str(tmp_path)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    scene = tmp_path / "teach_the_chain_rule_with_sin_x_2.py"
    assert result["scene"] == str(scene) and result["video"] is None and result["tokens"] == 17
    assert scene.read_text() == emitted
