"""The slots model's learning curve (issue 13): slot accuracy of adapters trained on more and more corpus rows.

    nice -n 5 .venv/bin/python scripts/learning_curve.py --adapters runs/gpu/curve-25 runs/gpu/curve-50 \\
        runs/gpu/curve-100 runs/gpu/curve-200 runs/gpu/curve-418 [--paraphrase runs/corpus-paraphrase] \\
        [--out reports/ablations] [--limit N] [--no-untuned] [--decoding unconstrained]

The adapters come from scripts/paper_on_gpu.py: the shipped slots recipe (LoRA r=8, alpha=16, lr 3e-4, batch 8,
2 epochs) on the first N rows of a fixed shuffle of the paraphrase corpus's 418 training rows. Each one fills the
slots of every request the way users get them (derivanim.fill, filler="model": constrained decoding of function,
variable and name; the teaching window and x0) on two sets:
- test (paper instructions): the committed corpus's test split (69 requests);
- test (paraphrases, unseen): the paraphrase corpus's test rows in instruction formats the first set never uses
  (derivanim.corpus.unseen_paraphrases).
The untuned base model (the adapters' base, no adapter, the same constrained route) is measured too, as the curve's
zero: what any training adds.
--decoding unconstrained scores the same adapters with plain greedy decoding instead (no grammar: derivanim eval's
template-unconstrained route), into learning_curve_unconstrained.json and .md; the figure draws both curves when
both files are there.
A request is right when the animation's function is the intended one (derivanim.evaluate.is_intended: numerically
equal); a refusal (no function found) and any other error count as wrong, and refusals are also counted apart.
Writes learning_curve.json (with every request's answer), learning_curve.md and learning_curve.png into --out.
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Literal

from derivanim.api import fill
from derivanim.corpus import Row, load_corpus, unseen_paraphrases
from derivanim.errors import DerivanimError, NoFunction
from derivanim.evaluate import EvalConfig, is_intended, produce
from derivanim.model import adapter_info

SETS = ("test (paper instructions)", "test (paraphrases, unseen)")
DECODINGS = ("constrained", "unconstrained")


def answer(row: Row, adapter: Path | Literal[False], base_model: str | None, decoding: str) -> dict:
    """One request through derivanim.fill with `adapter` (False: `base_model` alone), or for "unconstrained" decoding
    through derivanim eval's template-unconstrained route: the function it chose, right or not, refused or not."""
    if decoding == "unconstrained":
        config = EvalConfig(systems=("template-unconstrained",), slots_adapter=adapter or None, base_model=base_model)
        case = produce("template-unconstrained", row, config, 0)
        return {"request": row.instruction, "intended": row.slots.function,
                "function": case.slots and case.slots["function"], "right": bool(case.slots_correct),
                "refused": case.refusal is not None, "error": case.error, "valid_json": case.valid_json,
                "emitted": case.emitted, "seconds": round(case.seconds, 3)}
    started = time.perf_counter()
    record = {"request": row.instruction, "intended": row.slots.function, "function": None, "right": False,
              "refused": False, "error": None}
    try:
        animation = fill(row.instruction, filler="model", adapter=adapter, base_model=base_model)
        record["function"] = animation.slots.function
        record["right"] = is_intended(animation.slots.function, row)
    except NoFunction as error:
        record["refused"], record["error"] = True, str(error)
    except DerivanimError as error:
        record["error"] = f"{type(error).__name__}: {error}"
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def score(records: list[dict]) -> dict:
    right = sum(record["right"] for record in records)
    return {"right": right, "of": len(records), "accuracy": right / len(records) if records else None,
            "refusals": sum(record["refused"] for record in records),
            "errors": sum(record["error"] is not None and not record["refused"] for record in records),
            "latency_median_s": statistics.median(record["seconds"] for record in records) if records else None,
            **({"valid_json": sum(bool(record["valid_json"]) for record in records)}
               if records and "valid_json" in records[0] else {})}


def curve_point(adapter: Path | None, sets: dict[str, list[Row]], base_model: str, decoding: str) -> dict:
    """One adapter's scores on every set; adapter None: the untuned base model."""
    info = adapter_info(adapter) if adapter else {"train_rows": 0, "steps": 0}
    answers = {name: [answer(row, adapter or False, None if adapter else base_model, decoding) for row in rows]
               for name, rows in sets.items()}
    return {"adapter": str(adapter) if adapter else f"none: {base_model} untuned", "train_rows": info["train_rows"],
            "steps": info["steps"], "final_val_loss": info.get("final_val_loss"), "device": info.get("device"),
            "scores": {name: score(records) for name, records in answers.items()}, "answers": answers}


def table_markdown(curve: dict) -> str:
    lines = ["| Training rows | Steps | Validation loss | "
             + " | ".join(f"{name}: right | {name}: refusals" for name in SETS) + " |",
             "|---:" * (3 + 2 * len(SETS)) + "|"]
    for point in curve["points"]:
        cells = []
        for name in SETS:
            s = point["scores"][name]
            valid = f" ({s['valid_json']} valid JSON)" if "valid_json" in s else ""
            cells += [f"{s['right']}/{s['of']} ({100 * s['accuracy']:.1f}%){valid}", str(s["refusals"])]
        loss = "—" if point["final_val_loss"] is None else f"{point['final_val_loss']:.3f}"
        rows = point["train_rows"] or "0 (untuned base model)"
        lines.append(f"| {rows} | {point['steps']} | {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(curves: dict[str, dict], path: Path) -> None:
    """Accuracy against training rows on a log axis, per set, for each decoding measured (solid: constrained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.set_xscale("log")
    colours = dict(zip(SETS, ("tab:blue", "tab:orange")))
    for decoding, curve in curves.items():
        trained = [point for point in curve["points"] if point["train_rows"]]
        untuned = next((point for point in curve["points"] if not point["train_rows"]), None)
        rows = [point["train_rows"] for point in trained]
        style = "-" if decoding == "constrained" else "--"
        markers = "os" if decoding == "constrained" else "^v"
        for name, marker, size, above in zip(SETS, markers, (10, 6), (7, -14)):  # equal values stay visible
            accuracy = [100 * point["scores"][name]["accuracy"] for point in trained]
            ax.plot(rows, accuracy, marker=marker, markersize=size, linestyle=style, color=colours[name],
                    label=f"{decoding}: {name} (n={trained[0]['scores'][name]['of']})")
            for x, y in zip(rows, accuracy):
                if decoding == "constrained" or y < 99.5:  # a 100% of both decodings is labelled once
                    shift = 0 if decoding == "constrained" else 22
                    ax.annotate(f"{y:.0f}%", (x, y), textcoords="offset points", xytext=(shift, above), ha="center",
                                fontsize=8, color=colours[name])
            if untuned is not None:  # 0 rows has no place on a log axis: a level line
                ax.axhline(100 * untuned["scores"][name]["accuracy"], color=colours[name], linestyle=":",
                           label=f"{decoding}: {name}, untuned base model")
    ticks = sorted({point["train_rows"] for curve in curves.values() for point in curve["points"]
                    if point["train_rows"]})
    ax.set_xticks(ticks, [str(tick) for tick in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training rows (log scale)")
    ax.set_ylabel("slot accuracy: intended function (%)")
    ax.set_ylim(-10, 112)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=7)
    ax.set_title("Slots model: accuracy against training rows (derivanim.fill's route)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapters", type=Path, nargs="+", required=True, help="slots adapter folders")
    parser.add_argument("--paraphrase", type=Path, default=Path("runs/corpus-paraphrase"),
                        help="paraphrase corpus (derivanim data build --instructions paraphrase -o ...)")
    parser.add_argument("--out", type=Path, default=Path("reports/ablations"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests of each set")
    parser.add_argument("--no-untuned", action="store_true", help="skip the untuned base model")
    parser.add_argument("--decoding", choices=DECODINGS, default="constrained",
                        help="constrained (derivanim.fill, the default) or unconstrained (plain greedy, no grammar)")
    args = parser.parse_args()
    sets = {SETS[0]: load_corpus(None, split="test"), SETS[1]: unseen_paraphrases(args.paraphrase)}
    sets = {name: rows[:args.limit] for name, rows in sets.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    adapters = sorted(args.adapters, key=lambda adapter: adapter_info(adapter)["train_rows"])
    base_model = adapter_info(adapters[0])["base_model"]
    curve = {"command": "python scripts/learning_curve.py --adapters " + " ".join(map(str, adapters))
             + f" --paraphrase {args.paraphrase}" + (f" --limit {args.limit}" if args.limit else "")
             + (" --no-untuned" if args.no_untuned else "")
             + (f" --decoding {args.decoding}" if args.decoding != "constrained" else ""),
             "decoding": args.decoding, "sets": {name: len(rows) for name, rows in sets.items()}, "points": []}
    for adapter in ([] if args.no_untuned else [None]) + adapters:
        started = time.time()
        curve["points"].append(curve_point(adapter, sets, base_model, args.decoding))
        point = curve["points"][-1]
        print(f"{point['train_rows']} rows: " + ", ".join(
            f"{name} {s['right']}/{s['of']} ({s['refusals']} refused)" for name, s in point["scores"].items())
            + f" in {time.time() - started:.0f} s", flush=True)
        stem = args.out / report_name(args.decoding)
        stem.with_suffix(".json").write_text(json.dumps(curve, indent=1) + "\n")
        stem.with_suffix(".md").write_text(f"# Slots model: learning curve, {args.decoding} decoding\n\n"
                                           f"Command: `{curve['command']}`\n\n" + table_markdown(curve))
    curves = {decoding: json.loads(file.read_text()) for decoding in DECODINGS
              if (file := args.out / f"{report_name(decoding)}.json").is_file()}
    figure(curves, args.out / "learning_curve.png")


def report_name(decoding: str) -> str:
    return "learning_curve" if decoding == "constrained" else f"learning_curve_{decoding}"


if __name__ == "__main__":
    main()
