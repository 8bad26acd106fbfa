"""The README's results tables are the committed reports' tables, line for line."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("report", ["reports/test/summary.md", "reports/model-benchmark.md"])
def test_the_readme_shows_the_table_of_a_committed_report(report):
    table = [line for line in (ROOT / report).read_text().splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(table[0])
    assert readme[start:start + len(table)] == table


def test_every_row_of_the_readmes_epoch_table_is_a_row_of_the_paper_reproduction_report():
    """The README shows a selection of reports/paper-reproduction/epochs.md's rows, each as the report has it."""
    report = [line for line in (ROOT / "reports/paper-reproduction/epochs.md").read_text().splitlines()]
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(report[0])
    shown = readme[start:readme.index("", start)]
    assert len(shown) >= 8 and all(row in report for row in shown)


def test_every_example_of_derivanim_make_help_is_a_command_the_readme_shows():
    """`derivanim make --help` lists examples; each must be one the README documents, word for word."""
    import re

    from derivanim.cli import MAKE_EXAMPLES

    readme = (ROOT / "README.md").read_text()
    commands = [re.split(r"\s{2,}", line.strip())[0] for line in MAKE_EXAMPLES.splitlines()[1:] if line.strip()]
    assert len(commands) >= 5
    for command in commands:
        assert re.search(r"^(\.venv/bin/)?" + re.escape(command) + r"(\s|$)", readme, re.MULTILINE), command


def test_the_readmes_render_jobs_table_is_the_committed_benchmark():
    """Each row of the README's --jobs table: the seconds per second of video, the speed-up and the CPU seconds of
    reports/render_jobs.json, rounded as shown."""
    import json

    names = {"l": "480p15", "m": "720p30", "h": "1080p60"}
    renders = {(render["quality"], render["jobs"]): render
               for render in json.loads((ROOT / "reports/render_jobs.json").read_text())["renders"]}
    readme = (ROOT / "README.md").read_text()
    for quality, name in names.items():
        one, two = renders[quality, 1], renders[quality, 2]
        row = (f"| {name} | {one['wall'] / one['video']:.3f} | {two['wall'] / two['video']:.3f} | "
               f"{one['wall'] / two['wall']:.2f}x | {one['cpu']:.1f} / {two['cpu']:.1f} |")
        assert row in readme, row


def test_the_readmes_batch_figures_are_the_committed_benchmarks():
    """The seconds a video and videos an hour the README gives for `derivanim batch` are reports/batch-benchmark.json's."""
    import json

    report = json.loads((ROOT / "reports/batch-benchmark.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`derivanim batch` of {len(report['functions'])} different textbook functions" in readme
    for run in report["runs"].values():
        assert f"{run['seconds_per_video']} s" in readme and f"({run['videos_per_hour']:.0f} an hour" in readme
