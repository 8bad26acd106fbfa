"""`derivanim eval` end to end on two test requests, with adapters trained for a few steps on a tiny random Llama
(the stand-in for SmolLM2 or deepseek-coder); the report is checked file by file."""

import json
from pathlib import Path

import pytest

from derivanim.train import train

from tiny_model import corpus_rows

SYSTEMS = "baseline,template,template-untuned,template-unconstrained,template-rules,reference"


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
    # Constrained decoding gives valid JSON whatever the weights, measured on each response.
    for system in ("template", "template-untuned"):
        assert systems[system]["valid_json"] == {"passed": 2, "of": 2, "rate": 1.0}
    assert systems["template-unconstrained"]["valid_json"]["of"] == 2
    table = (out / "summary.md").read_text()
    assert "| Usable animation" in table or "**Usable animation**" in table


def test_a_missing_dataset_is_invalid_input(tmp_path, derivanim):
    done = derivanim("eval", "--systems", "template-rules", "--dataset", str(tmp_path / "absent"),
                     "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2
    assert "no dataset" in done.stderr and "Traceback" not in done.stderr


def test_the_baseline_scenes_can_come_from_a_file_made_elsewhere(tmp_path, derivanim):
    """scripts/paper_on_gpu.py generates the baseline's scenes on a GPU; eval reads them by request, in its order."""
    from derivanim.corpus import load_corpus

    rows = load_corpus(None, split="test")[:2]
    code = rows[0].code  # the corpus's own scene for the first request
    records = [{"request": row.instruction, "text": code if i == 0 else "not python (", "tokens": 9, "seconds": 1.0,
                "finished": True, "model": "a GPU run"} for i, row in reversed(list(enumerate(rows)))]
    scenes = tmp_path / "scenes.jsonl"
    scenes.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = tmp_path / "report"
    done = derivanim("eval", "--systems", "baseline", "--limit", "2", "--baseline-scenes", str(scenes),
                     "--out", str(out), cwd=Path.cwd(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [sample["request"] for sample in samples] == [row.instruction for row in rows]
    assert samples[0]["code"] == code and samples[1]["code"] == "not python ("
    assert samples[1]["metrics"]["valid_syntax"] is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline_scenes"]["path"] == str(scenes)

    records.pop()  # the first request's scene is gone
    scenes.write_text("".join(json.dumps(record) + "\n" for record in records))
    done = derivanim("eval", "--systems", "baseline", "--limit", "2", "--baseline-scenes", str(scenes),
                     "--out", str(tmp_path / "r2"), cwd=Path.cwd())
    assert done.returncode == 0  # each case records the error; the report is still written
    samples = [json.loads(line) for line in (tmp_path / "r2" / "samples.jsonl").read_text().splitlines()]
    assert all("has no scene for 1 of the 2 requests" in sample["error"] for sample in samples)


def test_the_validity_of_a_slots_response_is_measured_not_assumed():
    from derivanim.evaluate import response_validity

    assert response_validity('{"function":"x^2*sin(x)","variable":"x","name":"f"}') == (True, True)
    assert response_validity('{"function":"x^^2","variable":"x"}') == (True, False)  # JSON, but no function
    assert response_validity('{"function":null,"reason":"code"}') == (True, False)  # a refusal has no function
    assert response_validity('{"function":"x^2","variable":"x"') == (False, False)  # cut off
    assert response_validity('x^2 is the function') == (False, False)
    assert response_validity('["x^2"]') == (False, False)


def test_an_unconstrained_response_is_read_like_a_constrained_one():
    """The same window and x0 as the constrained route (the teaching numbers), whatever numbers the model wrote."""
    from derivanim.api import teaching_numbers
    from derivanim.errors import InvalidInput
    from derivanim.model_filler import read_response

    measures = {"tokens": 30, "forward_passes": 30, "seconds": 0.1, "model": "m"}
    filled = read_response("derivative of x^3", '{"function":"x^3","variable":"x","name":"f","x_min":-100,'
                           '"x_max":100,"x0":0}', teaching_numbers, **measures)
    assert (filled.slots.x_min, filled.slots.x_max, filled.slots.x0) == teaching_numbers("x^3")
    assert read_response("r", '{"function":null,"reason":"code"}', teaching_numbers, **measures).refusal == "code"
    for unreadable in ('{"function":"x^3","variable":"x"', '{"function":null,"reason":"bored"}', '{"function":3}',
                       '{"function":"x^3","colour":"red"}', '[1]'):
        with pytest.raises(InvalidInput, match="not valid slots"):
            read_response("derivative of x^3", unreadable, teaching_numbers, **measures)


@pytest.mark.parametrize("system", ["template-untuned", "template-unconstrained"])
def test_the_ablations_measure_each_response(system, tiny_model_dir):
    """The tiny random model, untuned: constrained, its response is valid JSON with a function the grammar reads (or
    a refusal); unconstrained, it writes anything, and the case says so instead of failing the evaluation."""
    from derivanim.corpus import load_corpus
    from derivanim.evaluate import EvalConfig, produce

    row = load_corpus(None, split="test")[0]
    config = EvalConfig(systems=(system,), base_model=tiny_model_dir)
    case = produce(system, row, config, 0)
    assert case.emitted is not None and case.tokens > 0 and case.seconds > 0
    if system == "template-untuned":
        assert case.valid_json is True
        assert case.function_parses is (case.refusal is None)
        assert (case.code is not None) is (case.error is None)
    else:  # the random weights write no JSON (blank lines, until the token limit)
        assert case.tokens <= 64 and case.valid_json is False and case.function_parses is False
        assert case.error.startswith("InvalidInput") and case.code is None and case.slots_correct is False
