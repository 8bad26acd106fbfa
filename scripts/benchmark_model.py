"""Benchmark the model filler: slot accuracy, warm latency, tokens and model passes per request, side by side
with the free-form baseline's token count for the same requests (the length of the scene it must write).

    .venv/bin/python scripts/benchmark_model.py [--adapter derivanim/adapters/slots] [--limit N]
                                                [--variants fp32,fp32-undrafted,int8] [--threads N] [--burners N]

Each variant runs every set, one after the other in the same process, so they are compared on the same machine
at the same time: fp32 (the default: the weights as trained, function tokens drafted from the request and
checked in one pass), fp32-undrafted (the same without drafts: one model pass per token the grammar leaves
open; the same output), int8 (dynamic int8 linear layers, drafted), fp32-taught-numbers (as derivanim.fill asks:
the model writes function, variable and name, the rules filler's teaching choice the window and x0).

Accuracy: the model's (verified) function equals the row's intended function numerically, on the corpus's
test split (the paper's instruction formats) and on the paraphrase corpus's test split (functions and
phrasings the model never saw). Writes reports/model-benchmark.json.

--threads sets torch's threads while generating (default: fill_slots' own, 1); --burners N runs N processes that
keep a core busy each beside the measurement, as a web server rendering videos would.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from derivanim.api import build_animation, shipped_slots_adapter, teaching_numbers
from derivanim.corpus import load_corpus
from derivanim.errors import InvalidInput
from derivanim.evaluate import same_function
from derivanim.grammar import parse_function
from derivanim.model import load_tokenizer
from derivanim.model_filler import fill_slots, slot_threads


# Requests in phrasings that appear in no template of the corpus (nor its paraphrases), with the function meant.
NOVEL = [
    ("Teach the product rule with x*sin(x)", "x*sin(x)"),
    ("Could you animate why the slope of x^2 - 3x is 2x - 3?", "x^2 - 3x"),
    ("derivative of cos(x)/x please", "cos(x)/x"),
    ("My class is on the chain rule tomorrow. Use sin(x^2).", "sin(x^2)"),
    ("visualise d/dt of e^(2t) for g(t) = e^(2t)", "e^(2t)"),
    ("What does the tangent to ln(x) + x do as x grows? Animate it.", "ln(x) + x"),
    ("Slope of the curve y = x^3 - x, shown with secants becoming a tangent", "x^3 - x"),
    ("a video about differentiating sqrt(x^2 + 1)", "sqrt(x^2 + 1)"),
    ("quotient rule example: (x+1)/(x-2)", "(x+1)/(x-2)"),
    ("Animate the rate of change of h(u) = u^4 - 2u^2", "u^4 - 2u^2"),
    ("Please differentiate e^x*cos(x) visually for a high-school class", "e^x*cos(x)"),
    ("I want to see tan(x)'s derivative", "tan(x)"),
    ("Show the instantaneous rate of change of 5x^2 + 2", "5x^2 + 2"),
    ("Make the derivative of atan(x) into an animation", "atan(x)"),
    ("Explain, with a moving tangent, the derivative of x*ln(x)", "x*ln(x)"),
    ("derivanim: x^4", "x^4"),
    ("Give me a Manim lesson on d/dx [cos(3x)]", "cos(3x)"),
    ("How fast does 1/x change? Animate the derivative.", "1/x"),
    ("Animate f'(x) for f(x) = x^2*e^(-x)", "x^2*e^(-x)"),
    ("Chain rule demo with ln(x^2 + 4)", "ln(x^2 + 4)"),
]


def novel_rows():
    """The NOVEL requests as corpus-like rows (intended slots from the rules filler)."""
    from derivanim.corpus import Row
    from derivanim.rules_filler import rules_slots

    return [Row(split="test", level="application", function=f, instruction=request, instruction_format="novel",
                slots=rules_slots(f), code="") for request, f in NOVEL]


# fill_slots options
VARIANTS = {"fp32": {}, "fp32-undrafted": {"draft": False}, "int8": {"int8": True},
            "fp32-taught-numbers": {"numbers": teaching_numbers}}


def measure(rows, adapter, tokenizer, options: dict) -> dict:
    correct, seconds, tokens, passes, baseline_tokens, failures = 0, [], [], [], [], []
    for row in rows:
        filled = fill_slots(row.instruction, adapter_dir=adapter, **options)
        seconds.append(filled.seconds)
        tokens.append(filled.tokens)
        passes.append(filled.forward_passes)
        if row.code:
            baseline_tokens.append(len(tokenizer(row.code)["input_ids"]) + 1)
        try:
            animation = build_animation(row.instruction, "model", filled.slots)
            ok = same_function(parse_function(animation.slots.function),
                               parse_function(row.slots.function, variable=row.slots.variable))
        except InvalidInput as error:
            ok, animation = False, error
        correct += ok
        if not ok:
            failures.append({"request": row.instruction, "intended": row.slots.function, "emitted": filled.emitted})
    return {
        "requests": len(rows), "correct": correct, "accuracy": correct / len(rows),
        "latency_median_s": statistics.median(seconds), "latency_p90_s": sorted(seconds)[int(0.9 * len(seconds))],
        "tokens_mean": statistics.fmean(tokens),
        "forward_passes_mean": statistics.fmean(passes),
        "baseline_tokens_mean": statistics.fmean(baseline_tokens) if baseline_tokens else None,
        "failures": failures,
    }


COLUMNS = ("variant", "requests", "slots give the intended function", "tokens/request", "model passes/request",
           "median latency (s)", "p90 latency (s)", "baseline tokens/request")


def table_rows(report: dict):
    """One row of COLUMNS per variant and request set."""
    for variant, results in report["variants"].items():
        for name, r in results.items():
            yield (variant, f"{name} ({r['requests']})", f"{r['correct']}/{r['requests']} ({100 * r['accuracy']:.1f}%)",
                   f"{r['tokens_mean']:.1f}", f"{r['forward_passes_mean']:.1f}", f"{r['latency_median_s']:.2f}",
                   f"{r['latency_p90_s']:.2f}",
                   "—" if r["baseline_tokens_mean"] is None else f"{r['baseline_tokens_mean']:,.0f}")


def markdown_table(report: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table_rows(report)]) + "\n"


def show(report: dict) -> None:
    table = Table(title=f"Model filler: {report['adapter']} ({report['torch_threads']} torch threads, "
                        f"{report.get('burners', 0)} busy processes beside it)")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=160).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default=None, help="slots adapter (default: the shipped one)")
    parser.add_argument("--paraphrase", default="runs/corpus-paraphrase",
                        help="paraphrase corpus (derivanim data build --instructions paraphrase -o ...)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads while generating (default: 1)")
    parser.add_argument("--burners", type=int, default=0, help="busy processes beside the measurement (default: 0)")
    parser.add_argument("--out", default="reports/model-benchmark.json", help="the report; its table goes beside it (.md)")
    parser.add_argument("--table-only", action="store_true", help="rewrite the .md table from the report at --out")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table_only:
        report = json.loads(out.read_text())
    else:
        burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
        for burner in burners:
            burner.start()
        try:
            report = run(args)
        finally:
            for burner in burners:
                burner.terminate()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    show(report)
    out.with_suffix(".md").write_text(markdown_table(report))
    return 0


def burn() -> None:
    """Keep one core busy until terminated."""
    while True:
        pass


def run(args) -> dict:
    adapter = args.adapter or shipped_slots_adapter()
    tokenizer = load_tokenizer()
    sets = {"test (paper instructions)": load_corpus(None, split="test")}
    if Path(args.paraphrase).exists():
        paraphrased = [row for row in load_corpus(args.paraphrase, split="test")
                       if row.instruction_format not in {r.instruction_format for r in sets["test (paper instructions)"]}]
        sets["test (paraphrases, unseen)"] = paraphrased
    sets["novel phrasings (hand-written)"] = novel_rows()
    variants, load_seconds = {}, {}
    for variant in args.variants.split(","):
        options = VARIANTS[variant] | {"threads": args.threads}
        started = time.perf_counter()
        fill_slots("Show the derivative of x^2", adapter_dir=adapter, **options)  # warm-up: loading is not latency
        load_seconds[variant] = time.perf_counter() - started
        variants[variant] = {name: measure(rows[: args.limit], adapter, tokenizer, options) for name, rows in sets.items()}
    return {"adapter": str(adapter), "load_seconds": load_seconds, "torch_threads": args.threads or slot_threads(),
            "burners": args.burners, "load_average": os.getloadavg(), "command": " ".join(sys.argv),
            "variants": variants}


if __name__ == "__main__":
    sys.exit(main())
