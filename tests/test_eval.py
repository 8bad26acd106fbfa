"""`derivanim eval` end to end on two test requests, with adapters trained for a few steps on a tiny random Llama
(the stand-in for SmolLM2 or deepseek-coder); the report is checked file by file."""

import json
from pathlib import Path

import pytest

from derivanim.train import train

from tiny_model import corpus_rows

SYSTEMS = "baseline,template,template-rules,reference"


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_model_dir, derivanim):
    folder = tmp_path_factory.mktemp("eval")
    adapters = {}
    for task in ("slots", "freeform"):
        adapters[task] = train(task, corpus_rows(8), corpus_rows(2, split="val"), base_model=tiny_model_dir,
                               out_dir=folder / task, epochs=1, batch_size=4, lr=5e-3, log_every=1,
                               max_length=512, progress=False).out_dir
    out = folder / "report"
    done = derivanim("eval", "--systems", SYSTEMS, "--limit", "2", "--slots-adapter", str(adapters["slots"]),
                     "--freeform-adapter", str(adapters["freeform"]), "--out", str(out), cwd=Path.cwd(), timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout


@pytest.mark.slow
def test_the_report_has_every_file(report):
    out, stdout = report
    for name in ("samples.jsonl", "summary.json", "summary.md", "summary.tex", "usable_by_level.png", "loss_vs_quality.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "Usable animation" in stdout


@pytest.mark.slow
def test_every_case_is_traceable(report):
    out, _ = report
    cases = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(cases) == 2 * len(SYSTEMS.split(","))
    for case in cases:
        assert case["system"] in SYSTEMS.split(",") and case["request"] and case["function"]
        assert set(case["metrics"]) >= {"valid_syntax", "executable", "derivative_plot", "usable"}


@pytest.mark.slow
def test_the_summary_records_provenance_and_the_upper_bound_is_usable(report):
    out, _ = report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith("derivanim eval") and summary["dataset"]["sha256"]
    assert set(summary["adapters"]) == {"slots", "freeform"} and all(a["sha256"] for a in summary["adapters"].values())
    assert summary["versions"]["manim"]
    systems = summary["systems"]
    assert systems["template-rules"]["usable"] == {"passed": 2, "of": 2, "rate": 1.0}
    # A tiny random model writes no usable scene free-form; its constrained slots still give valid JSON.
    assert systems["baseline"]["usable"]["passed"] == 0
    assert systems["template"]["tokens_mean"] > 0 and systems["template"]["slot_accuracy"]["of"] == 2
    table = (out / "summary.md").read_text()
    assert "| Usable animation" in table or "**Usable animation**" in table


def test_a_missing_dataset_is_invalid_input(tmp_path, derivanim):
    done = derivanim("eval", "--systems", "template-rules", "--dataset", str(tmp_path / "absent"),
                     "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2
    assert "no dataset" in done.stderr and "Traceback" not in done.stderr
