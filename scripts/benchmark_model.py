"""Benchmark the model filler as derivanim.fill uses it, all targets of issue 12 in one run: slot accuracy, refusals,
warm latency on the idle machine and beside busy processes, and the cold start of a CLI call.

    .venv/bin/python scripts/benchmark_model.py [--adapter derivanim/adapters/slots] [--limit N]
                                                [--variants fill,undrafted,int8] [--burners N] [--cold N]

Request sets (the intended function, or None where the answer must be a refusal):
- test (paper instructions): the committed corpus's test split (69);
- test (paraphrases, unseen): the paraphrase corpus's test split in the formats that are not the paper's;
- novel phrasings (hand-written): NOVEL below, phrasings in no template;
- words, unseen functions: the slots corpus's test-split words rows (functions never trained on, said in words);
- words (hand-written): data/requests/words.tsv, teachers' phrasings written apart from the generator;
- words, second set (hand-written): data/requests/words_2.tsv, 20 more, written after the retrained adapter's false
  refusals were seen and before the guards that answer them (model_filler.refusable);
- off-topic (hand-written, held out): data/requests/off_topic.txt, 50 requests to refuse, never trained on;
- off-topic, second set (held out): data/requests/off_topic_2.txt, 50 more, written after the first set's misses
  had shaped the training requests to refuse, so that those misses do not grade their own fix;
- off-topic, third set (held out): data/requests/off_topic_3.txt, 50 more, written before anything answered the
  second set's misses;
- off-topic, fourth set (held out): data/requests/off_topic_4.txt, 50 more, written after the third set's misses
  were seen and before the change they prompted;
- off-topic, fifth set (held out): data/requests/off_topic_5.txt, 50 more, written before the training requests
  were widened for the misses of sets 2-4 (other mathematics asked of a written function) and the adapter retrained.
A function is right when the verified slots' function equals the intended one numerically; a refusal of a request
with a function is a false refusal; an off-topic request is right when refused. Each request is judged on what
derivanim.fill gives a user: where the grammars decide before any model (api.route: the request grammar reads the
function, or refuses a typo or hostile phrasing in one line), that decision is judged, and counted in the
"grammar decided" column; the model still fills every request, for its latency and the busy run's comparison.

Each variant runs every set on the idle machine (accuracy and latency), then again with --burners processes
keeping the cores busy (default: one per core), where only latency is measured and every output is checked to be
the same as the idle run's. fill (the default) is what derivanim.fill does: drafted fp32 decoding of function,
variable and name, the window and x0 from the rules filler's teaching choice. --cold N times N fresh
`derivanim make "<words>" --no-render` processes (model caches already built), idle and busy.
Writes reports/model-benchmark.json and its table (.md).
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from derivanim.api import route, rules_slots, shipped_slots_adapter, teaching_numbers
from derivanim.corpus import load_corpus, unseen_paraphrases
from derivanim.errors import InvalidInput
from derivanim.evaluate import same_function
from derivanim.grammar import parse_function
from derivanim.model_filler import fill_slots, slot_threads
from derivanim.verify import verify

REQUESTS = Path(__file__).resolve().parent.parent / "data" / "requests"


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


def held_out(path: str) -> list[tuple[str, str | None]]:
    """(request, intended function) from data/requests: words.tsv (request<TAB>function) or off_topic.txt
    (requests to refuse: None)."""
    lines = [line for line in (REQUESTS / path).read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    if path.endswith(".tsv"):
        return [tuple(line.split("\t")) for line in lines]
    return [(line.split("  # ")[0], None) for line in lines]


def request_sets(args) -> dict[str, list[tuple[str, str | None]]]:
    test = load_corpus(None, split="test")
    sets = {"test (paper instructions)": [(row.instruction, row.slots.function) for row in test]}
    if Path(args.paraphrase).exists():
        sets["test (paraphrases, unseen)"] = [(row.instruction, row.slots.function)
                                              for row in unseen_paraphrases(args.paraphrase)]
    sets["novel phrasings (hand-written)"] = list(NOVEL)
    words = Path(args.slots_corpus) / "test.jsonl"
    if words.exists():
        rows = [json.loads(line) for line in words.read_text(encoding="utf-8").splitlines()]
        sets["words, unseen functions"] = [(row["instruction"], row["slots"]["function"]) for row in rows
                                           if row["kind"] == "words"]
    sets["words (hand-written)"] = held_out("words.tsv")
    sets["words, second set (hand-written)"] = held_out("words_2.tsv")
    sets["off-topic (hand-written, held out)"] = held_out("off_topic.txt")
    sets["off-topic, second set (held out)"] = held_out("off_topic_2.txt")
    sets["off-topic, third set (held out)"] = held_out("off_topic_3.txt")
    sets["off-topic, fourth set (held out)"] = held_out("off_topic_4.txt")
    sets["off-topic, fifth set (held out)"] = held_out("off_topic_5.txt")
    return sets


# fill_slots options
VARIANTS = {"fill": {"numbers": teaching_numbers}, "undrafted": {"numbers": teaching_numbers, "draft": False},
            "int8": {"numbers": teaching_numbers, "int8": True}}


def routed(request: str):
    """What fill() decides before any model: the Request the grammar reads, None (the model fills it), or the
    grammar's InvalidInput."""
    try:
        return route(request)
    except InvalidInput as error:
        return error


def judged(request: str, intended: str | None, filled, decided) -> str:
    """'right', 'wrong', 'false refusal' (a function was meant) or 'not refused' (none was), of the grammar's decision
    where it made one (`decided`: routed's answer), else of the model's slots."""
    if isinstance(decided, InvalidInput):
        return "right" if intended is None else "false refusal"
    if decided is not None:
        chosen = rules_slots(decided.function)  # as fill() does with the function the grammar read
    elif filled.slots is None:
        return "right" if intended is None else "false refusal"
    else:
        chosen = filled.slots
    if intended is None:
        return "not refused"
    try:
        chosen = verify(chosen).slots
        return "right" if same_function(parse_function(chosen.function, variable=chosen.variable),
                                        parse_function(intended)) else "wrong"
    except InvalidInput:
        return "wrong"


def measure(requests, adapter, options: dict, idle: dict | None = None) -> dict:
    """One set under one variant. idle: the same set's idle result, whose outputs this run must repeat."""
    outcomes, seconds, tokens, passes, emitted, decided = [], [], [], [], [], 0
    for request, intended in requests:
        filled = fill_slots(request, adapter_dir=adapter, **options)
        seconds.append(filled.seconds)
        tokens.append(filled.tokens)
        passes.append(filled.forward_passes)
        emitted.append(filled.emitted)
        if idle is None:
            decision = routed(request)
            decided += decision is not None
            outcomes.append(judged(request, intended, filled, decision))
    result = {"requests": len(requests), "latency_median_s": statistics.median(seconds),
              "latency_p90_s": sorted(seconds)[int(0.9 * len(seconds))], "tokens_mean": statistics.fmean(tokens),
              "forward_passes_mean": statistics.fmean(passes), "emitted": emitted}
    if idle is not None:
        result["same_outputs_as_idle"] = sum(a == b for a, b in zip(emitted, idle["emitted"]))
        return result
    result.update(correct=outcomes.count("right"), accuracy=outcomes.count("right") / len(requests),
                  false_refusals=outcomes.count("false refusal"), grammar_decided=decided,
                  failures=[{"request": request, "intended": intended, "emitted": text, "outcome": outcome}
                            for (request, intended), text, outcome in zip(requests, emitted, outcomes)
                            if outcome != "right"])
    return result


COLUMNS = ("variant", "requests", "right", "false refusals", "grammar decided", "median latency idle (s)",
           "p90 idle (s)", "median latency busy (s)", "p90 busy (s)", "busy = idle output", "tokens/request",
           "model passes/request")


def table_rows(report: dict):
    """One row of COLUMNS per variant and request set."""
    for variant, results in report["variants"].items():
        for name, r in results["idle"].items():
            busy = results["busy"].get(name)
            yield (variant, f"{name} ({r['requests']})", f"{r['correct']}/{r['requests']} ({100 * r['accuracy']:.1f}%)",
                   "—" if name.startswith("off-topic") else str(r["false_refusals"]), str(r["grammar_decided"]),
                   f"{r['latency_median_s']:.2f}", f"{r['latency_p90_s']:.2f}",
                   "—" if busy is None else f"{busy['latency_median_s']:.2f}",
                   "—" if busy is None else f"{busy['latency_p90_s']:.2f}",
                   "—" if busy is None else f"{busy['same_outputs_as_idle']}/{busy['requests']}",
                   f"{r['tokens_mean']:.1f}", f"{r['forward_passes_mean']:.1f}")


def markdown_table(report: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    cold = report.get("cold_start_s")
    if cold:
        lines += ["", f"Cold `{cold['command']}` (model caches built), median of {cold['runs']}: "
                      f"{cold['idle_median']:.1f} s idle, {cold['busy_median']:.1f} s beside {report['burners']} busy "
                      f"processes."]
    lines += ["", f"Load average before the run: {report['load_average_before'][0]:.2f}; "
                  f"{report['torch_threads']} torch thread(s); {report['burners']} busy processes in the busy runs; "
                  f"`{report['command']}`."]
    return "\n".join(lines) + "\n"


def show(report: dict) -> None:
    table = Table(title=f"Model filler: {report['adapter']} ({report['torch_threads']} torch threads)")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=200).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default=None, help="slots adapter (default: the shipped one)")
    parser.add_argument("--paraphrase", default="runs/corpus-paraphrase",
                        help="paraphrase corpus (derivanim data build --instructions paraphrase -o ...)")
    parser.add_argument("--slots-corpus", default="runs/slots-corpus",
                        help="slots corpus with words rows (derivanim data slots ... -o ...)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--variants", default="fill", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads while generating (default: 1)")
    parser.add_argument("--burners", type=int, default=os.cpu_count(),
                        help="busy processes beside the busy runs (default: one per core)")
    parser.add_argument("--cold", type=int, default=3, help="fresh CLI processes to time, idle and busy (default: 3)")
    parser.add_argument("--out", default="reports/model-benchmark.json", help="the report; its table goes beside it (.md)")
    parser.add_argument("--table-only", action="store_true", help="rewrite the .md table from the report at --out")
    args = parser.parse_args()
    out = Path(args.out)
    report = json.loads(out.read_text()) if args.table_only else run(args)
    if not args.table_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    show(report)
    out.with_suffix(".md").write_text(markdown_table(report))
    return 0


def burn() -> None:
    """Keep one core busy until terminated."""
    while True:
        pass


@contextlib.contextmanager
def busy(count: int):
    """`count` processes keeping a core busy each, for the time of the block."""
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(count)]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()


COLD_REQUEST = "Teach the product rule with x*sin(x)"


def cold_starts(runs: int) -> list[float]:
    """Seconds of `derivanim make COLD_REQUEST --no-render` in fresh processes."""
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "derivanim"), "make", COLD_REQUEST, "--no-render",
                            "-o", folder], check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return times


def run(args) -> dict:
    adapter = args.adapter or shipped_slots_adapter()
    sets = request_sets(args)
    load_average = os.getloadavg()
    variants, load_seconds = {}, {}
    for variant in args.variants.split(","):
        options = VARIANTS[variant] | {"threads": args.threads}
        started = time.perf_counter()
        fill_slots("Show the derivative of x^2", adapter_dir=adapter, **options)  # warm-up: loading is not latency
        load_seconds[variant] = time.perf_counter() - started
        idle = {name: measure(requests[: args.limit], adapter, options) for name, requests in sets.items()}
        with busy(args.burners):
            loaded = {name: measure(requests[: args.limit], adapter, options, idle[name])
                      for name, requests in sets.items()}
        variants[variant] = {"idle": idle, "busy": loaded}
    cold = None
    if args.cold:
        cold_starts(1)  # builds the model caches if this adapter's merge is not cached yet
        idle_times = cold_starts(args.cold)
        with busy(args.burners):
            busy_times = cold_starts(args.cold)
        cold = {"command": f'derivanim make "{COLD_REQUEST}" --no-render', "runs": args.cold, "idle": idle_times,
                "busy": busy_times, "idle_median": statistics.median(idle_times),
                "busy_median": statistics.median(busy_times)}
    return {"adapter": str(adapter), "load_seconds": load_seconds, "torch_threads": args.threads or slot_threads(),
            "burners": args.burners, "load_average_before": load_average, "command": " ".join(sys.argv),
            "variants": variants, "cold_start_s": cold}


if __name__ == "__main__":
    sys.exit(main())
