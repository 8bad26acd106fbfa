"""The paper reproduction's per-epoch table and figure (issue 13): training and validation loss per epoch beside each
metric's rate per epoch, from the run's training log and one `derivanim eval` report per epoch adapter.

    python scripts/paper_report.py --log reports/paper-reproduction/training_log.json \
        --evals reports/paper-reproduction/eval-epoch-{1..5} --out reports/paper-reproduction

Writes OUT/epochs.md (the table), OUT/epochs.json and OUT/loss_vs_quality.png.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from derivanim.metrics import STRUCTURE_FREE, TABLE  # noqa: E402

NAMES = dict((*TABLE, *STRUCTURE_FREE, ("layout_clean", "Layout clean"), ("finished", "Finished (EOS within 2,048)")))
PLOTTED = ["valid_syntax", "executable", "function_plot", "layout_clean", "tangent_correct", "derivative_shown",
           "usable_any", "usable"]


def epoch_rows(log: dict, evals: list[Path]) -> list[dict]:
    losses = {entry["epoch"]: entry for entry in log["epochs"]}
    rows = []
    for folder in evals:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        epoch = int(folder.name.rsplit("-", 1)[1])
        baseline = summary["systems"]["baseline"]
        rates = {key: baseline[key] for key in NAMES}
        rows.append({"epoch": epoch, "train_loss": losses[epoch]["train_loss"], "val_loss": losses[epoch]["val_loss"],
                     "tokens_mean": baseline["tokens_mean"], "rates": rates})
    return sorted(rows, key=lambda row: row["epoch"])


def table(rows: list[dict]) -> str:
    lines = ["| | " + " | ".join(f"epoch {row['epoch']}" for row in rows) + " |",
             "|---|" + "---|" * len(rows),
             "| Train loss | " + " | ".join(f"{row['train_loss']:.4f}" for row in rows) + " |",
             "| Validation loss | " + " | ".join(f"{row['val_loss']:.4f}" for row in rows) + " |",
             "| Generated tokens (mean) | " + " | ".join(f"{row['tokens_mean']:.0f}" for row in rows) + " |"]
    for key, name in NAMES.items():
        cells = []
        for row in rows:
            rate = row["rates"].get(key) or {}
            cells.append("—" if not rate.get("of") else f"{rate['passed']}/{rate['of']}")
        if any(cell != "—" for cell in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path) -> None:
    epochs = [row["epoch"] for row in rows]
    fig, (losses, rates) = plt.subplots(1, 2, figsize=(14, 4.6), gridspec_kw={"width_ratios": [1, 1.5]})
    losses.plot(epochs, [row["train_loss"] for row in rows], "o-", label="train loss")
    losses.plot(epochs, [row["val_loss"] for row in rows], "s-", label="validation loss")
    losses.axhline(0.019, color="gray", linestyle=":", label="paper: validation loss 0.019")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss (scene tokens)")
    losses.set_yscale("log")
    losses.set_xticks(epochs)
    losses.legend()
    losses.set_title("Free-form baseline: loss per epoch")
    for key in PLOTTED:
        values = [100 * (row["rates"][key]["rate"] or 0) for row in rows]
        rates.plot(epochs, values, "o-", label=NAMES[key])
    rates.set_xlabel("epoch")
    rates.set_ylabel("% of 57 original test requests")
    rates.set_ylim(-3, 103)
    rates.set_xticks(epochs)
    rates.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    rates.set_title("Each metric's rate per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, required=True, help="the run's training_log.json")
    parser.add_argument("--evals", type=Path, nargs="+", required=True, help="eval-epoch-K report folders")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = epoch_rows(json.loads(args.log.read_text(encoding="utf-8")), args.evals)
    (args.out / "epochs.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    (args.out / "epochs.md").write_text(table(rows), encoding="utf-8")
    figure(rows, args.out / "loss_vs_quality.png")
    print(table(rows))


if __name__ == "__main__":
    main()
