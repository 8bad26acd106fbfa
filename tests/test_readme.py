"""The README's results table is the committed evaluation report's table, line for line."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_shows_the_test_split_table_from_its_report():
    summary = (ROOT / "reports/test/summary.md").read_text()
    table = [line for line in summary.splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(table[0])
    assert readme[start:start + len(table)] == table
