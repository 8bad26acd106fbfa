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
