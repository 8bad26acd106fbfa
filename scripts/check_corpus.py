"""Check derivanim against every function of the original DerivativeAnimator corpus (525 rows nobody here wrote).

For each row: fill(function, filler="rules") succeeds; its derivative equals SymPy's diff of the parsed
function (simplest(a - b) == 0 within derivanim's work budget, else equal at 20 points); and the generated scene's dry
run ran all eight phases, drew f on the first axes and f' on the second, and left nothing outside the frame
and no text over text. Scenes run through derivanim.execute (batches of scenes in worker processes, two at a
time; a scene that crashes or hangs fails alone).

    .venv/bin/python scripts/check_corpus.py                 # all rows; writes reports/corpus-check/
    .venv/bin/python scripts/check_corpus.py --limit 10      # the first 10 rows, to try it

Exit codes: 0 every row passed, 1 some row failed, 2 the corpus folder is absent.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import sympy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derivanim import fill  # noqa: E402
from derivanim.calculus import evaluator, simplest  # noqa: E402
from derivanim.execute import dry_run_reports  # noqa: E402
from derivanim.grammar import parse_function  # noqa: E402
from derivanim.lessons import DERIVATIVE  # noqa: E402

CORPUS = ROOT / ".." / "shared" / "reference" / "derivanimator-525"
SPLITS = ("train", "val", "test")
PHASES = len(DERIVATIVE.phases)  # the reference scenes are the derivative lesson's
RTOL = 1e-5  # relative to max(|value|, the curve's size)
SECONDS_PER_SCENE = 120
PROGRESS_EVERY = 25  # scenes between progress lines (and summaries written so far)


def load_rows() -> list[dict]:
    rows = []
    for split in SPLITS:
        with open(CORPUS / f"{split}.jsonl") as stream:
            rows += [{"id": f"{split}:{i}", "function": json.loads(line)["function"]} for i, line in enumerate(stream)]
    return rows


def same_derivative(text: str, derivative: str) -> tuple[bool, str]:
    """Whether derivanim's derivative (as text) equals SymPy's diff of the parsed function, and how it was decided."""
    parsed = parse_function(text)
    var = parsed.variable
    ours = sympy.sympify(derivative, locals={str(var): var})  # SymPy's own printed output, not user text
    truth = sympy.diff(parsed.expr, var)
    if simplest(ours - truth) == 0:  # tries simplify() where the difference is small enough, as fill() does
        return True, "symbolic"
    xs = np.linspace(-3.7, 3.9, 20)  # off round numbers, both signs; compared where both are real and finite
    a, b = evaluator(ours, var)(xs), evaluator(truth, var)(xs)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        xs = np.linspace(0.05, 9.7, 20)
        a, b = evaluator(ours, var)(xs), evaluator(truth, var)(xs)
        both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return False, "numeric: no point where both are defined"
    if np.array_equal(np.isfinite(a), np.isfinite(b)) and np.allclose(a[both], b[both], rtol=1e-8, atol=1e-10):
        return True, "numeric"
    return False, "numeric: values differ"


def plot_mismatch(plot: dict, reference) -> str | None:
    """None if the plotted values equal the reference wherever both are finite, else the first difference."""
    xs = np.array(plot["x"])
    ys = np.array([np.nan if y is None else y for y in plot["y"]], dtype=float)
    expected = reference(xs)
    both = np.isfinite(ys) & np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[both])))) if both.any() else 1.0
    bad = np.flatnonzero(both & (np.abs(ys - expected) > RTOL * np.maximum(np.abs(expected), scale)))
    if bad.size:
        i = bad[0]
        return f"x={xs[i]:.4g}: drawn {ys[i]:.6g}, true {expected[i]:.6g}"
    return None


def judge_dry_run(text: str, report: dict) -> dict:
    """The dry run's verdicts: did it run, does it draw f and f', is its layout clean."""
    result = {"dry_run_ok": False, "plots_ok": False, "layout_ok": False, "reasons": []}
    if report.get("error"):
        result["reasons"].append(f"dry run: {report['error'][:300]}")
    elif len(report.get("phases", [])) != PHASES:
        result["reasons"].append(f"dry run: {len(report.get('phases', []))} of {PHASES} phases ran")
    else:
        result["dry_run_ok"] = True
    parsed = parse_function(text)
    f = evaluator(parsed.expr, parsed.variable)
    df = evaluator(sympy.diff(parsed.expr, parsed.variable), parsed.variable)
    plots = report.get("plots", [])
    problems = []
    if {plot["axes"] for plot in plots} != {0, 1}:
        problems.append(f"plots on axes {sorted({plot['axes'] for plot in plots})}, expected f on 0 and f' on 1")
    for plot in plots:
        if plot["axes"] not in (0, 1):
            problems.append(f"a curve on a third axes ({plot['axes']})")
            continue
        name, reference = ("f", f) if plot["axes"] == 0 else ("f'", df)
        mismatch = plot_mismatch(plot, reference)
        if mismatch:
            problems.append(f"the curve on axes {plot['axes']} is not {name}: {mismatch}")
    result["plots_ok"] = result["dry_run_ok"] and not problems
    result["reasons"] += [f"plots: {p}" for p in problems[:3]]
    layout = [
        f"{phase['name']}: {key} {phase[key][:2]}"
        for phase in report.get("phases", []) for key in ("outside_frame", "text_overlaps") if phase[key]
    ]
    result["layout_ok"] = result["dry_run_ok"] and not layout
    result["reasons"] += [f"layout: {item}"[:300] for item in layout[:3]]
    return result


def write_summary(out: Path, rows: list[dict], results: dict, started: float, finished: bool, command: str) -> dict:
    checks = ("fill_ok", "derivative_ok", "dry_run_ok", "plots_ok", "layout_ok")
    per_row = [results.get(row["function"], {}) for row in rows]
    summary = {
        "command": command,
        "finished": finished,
        "rows": len(rows),
        "distinct_functions": len({row["function"] for row in rows}),
        "checked_rows": sum(bool(r) and ("layout_ok" in r or not r.get("fill_ok")) for r in per_row),
        **{check: sum(bool(r.get(check)) for r in per_row) for check in checks},
        "all_ok": sum(all(r.get(check) for check in checks) for r in per_row),
        "derivative_checked_by": {
            how: sum(r.get("derivative_check") == how for r in per_row) for how in ("symbolic", "numeric")
        },
        "failures": [
            {"id": row["id"], "function": row["function"], "reasons": r["reasons"]}
            for row, r in zip(rows, per_row) if r.get("reasons")
        ],
        "wall_seconds": round(time.time() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_readme(out: Path, summary: dict) -> None:
    rows = summary["rows"]
    lines = [
        "# Corpus check: derivanim on the 525 functions of the original DerivativeAnimator corpus",
        "",
        "Every row's `function` through `fill(function, filler=\"rules\")`, its derivative checked against SymPy's",
        "`diff` of the parsed function, and the generated scene run with animations skipped (`derivanim.dryrun`):",
        "all eight phases, f drawn on the first axes and f' on the second (checked against SymPy at every sampled",
        "point), nothing outside the frame and no text over text after any phase.",
        "",
        "```bash",
        summary["command"],
        "```",
        "",
        "| check | rows passing |",
        "| --- | --- |",
        f"| fill() succeeds | {summary['fill_ok']} / {rows} |",
        f"| derivative equals SymPy's diff | {summary['derivative_ok']} / {rows} "
        f"({summary['derivative_checked_by']['symbolic']} symbolically, {summary['derivative_checked_by']['numeric']} numerically) |",
        f"| dry run: all eight phases, no error | {summary['dry_run_ok']} / {rows} |",
        f"| plots: f on axes 1, f' on axes 2 | {summary['plots_ok']} / {rows} |",
        f"| layout: inside the frame, no text over text | {summary['layout_ok']} / {rows} |",
        f"| **all of the above** | **{summary['all_ok']} / {rows}** |",
        "",
        f"{summary['distinct_functions']} distinct functions; wall time {summary['wall_seconds'] / 60:.0f} min on 2 shared cores"
        f"{'' if summary['finished'] else ' so far (the run had not finished when this was written)'}.",
        "",
        "## Failures",
        "",
        "| row | function | first reason |",
        "| --- | --- | --- |",
        *[f"| {f['id']} | `{f['function']}` | {f['reasons'][0][:160].replace('|', '/')} |" for f in summary["failures"]],
        "",
        "All reasons are in `summary.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="check only the first N rows")
    parser.add_argument("--workers", type=int, default=2, help="dry-run processes at a time (at most 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "corpus-check", help="where to write the report")
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"check_corpus: the reference corpus is not at {CORPUS.resolve()}", file=sys.stderr)
        return 2
    command = ".venv/bin/python scripts/check_corpus.py" + (f" --limit {args.limit}" if args.limit else "")
    started = time.time()
    rows = load_rows()[:args.limit]
    functions = list(dict.fromkeys(row["function"] for row in rows))
    results: dict[str, dict] = {}
    scenes = {}
    for text in functions:  # fill and the symbolic check run here: SIGALRM needs the main thread
        result = results[text] = {"fill_ok": False, "derivative_ok": False, "reasons": []}
        try:
            animation = fill(text, filler="rules")
        except Exception as error:
            result["reasons"].append(f"fill: {type(error).__name__}: {error}"[:300])
            continue
        result["fill_ok"] = True
        try:
            result["derivative_ok"], result["derivative_check"] = same_derivative(text, animation.derivative_sympy)
        except Exception as error:
            result["derivative_check"] = f"{type(error).__name__}: {error}"
        if not result["derivative_ok"]:
            result["reasons"].append(f"derivative {animation.derivative_sympy}: {result['derivative_check']}"[:300])
        scenes[text] = animation.code
    print(f"filled {len(scenes)} of {len(functions)} distinct functions in {time.time() - started:.0f} s", flush=True)
    reports = dry_run_reports(scenes, timeout=SECONDS_PER_SCENE, workers=max(1, min(args.workers, 2)))
    for done, (text, report) in enumerate(reports, 1):
        verdict = judge_dry_run(text, report)
        results[text].update({k: v for k, v in verdict.items() if k != "reasons"})
        results[text]["reasons"] += verdict["reasons"]
        if done % PROGRESS_EVERY == 0 or done == len(scenes):
            summary = write_summary(args.out, rows, results, started, False, command)
            print(f"{done}/{len(scenes)} scenes dry-run: {summary['checked_rows']} rows checked, "
                  f"{summary['all_ok']} all ok, {time.time() - started:.0f} s", flush=True)
    summary = write_summary(args.out, rows, results, started, True, command)
    write_readme(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))
    for failure in summary["failures"][:20]:
        print(f"FAIL {failure['id']} {failure['function']}: {'; '.join(failure['reasons'])}")
    return 0 if summary["all_ok"] == summary["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
