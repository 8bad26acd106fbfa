"""Training speed of `derivanim train` on this machine, before and after, side by side.

    .venv/bin/python scripts/benchmark_train.py [--steps 1] [--variants before:1:2,after:1:1,...]

Every variant trains the paper's recipe (LoRA r=64, alpha=128, lr 1e-4, effective batch 16, max length 2048)
on the original corpus's training split for a few optimizer steps, each in its own process, one after the
other. A variant is CODE:MICRO_BATCH:THREADS: "before" is derivanim/train.py as of commit BEFORE (rows in random
order, a batch padded to its longest row), "after" the working tree's (batches of rows of similar length);
the micro-batch times the gradient accumulation is 16; THREADS is torch's intra-op thread count.

Tokens are counted where batches are made: real tokens (prompt + response + EOS) and padding. Time is the
training loop's own (forward, backward, optimizer), without loading the model or the data. A second table
gives the share of padding in the batches of one epoch for larger micro-batches, random against
length-grouped, without training: at ~1,250 tokens a row, a micro-batch of 4 needed 23.7 GB here (killed
by the kernel), so only micro-batches of 1 are timed. Prints both tables and writes them, with the machine's
load, to reports/paper-reproduction/train_speed.md.
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "3e0eec8"  # the last commit whose training loop took rows in random order and had no checkpoints
DATA = ROOT / "runs" / "original"  # derivanim data import ../shared/reference/derivanimator-525 -o runs/original
RECIPE = {"epochs": 5, "lora_r": 64, "lora_alpha": 128, "lr": 1e-4, "max_length": 2048}
EFFECTIVE_BATCH = 16
DEFAULT_VARIANTS = "before:1:2,after:1:2,after:1:1"  # torch's default on this machine is 2 threads
OUT = ROOT / "reports" / "paper-reproduction" / "train_speed.md"


def training_module(code: str):
    """derivanim.train as it is now ("after"), or as it was at commit BEFORE ("before")."""
    if code == "after":
        import derivanim.train

        return derivanim.train
    source = subprocess.run(["git", "show", f"{BEFORE}:derivanim/train.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("train_before", loader=None))
    sys.modules["train_before"] = module  # dataclasses look their module up
    exec(compile(source, f"{BEFORE}:derivanim/train.py", "exec"), module.__dict__)
    return module


def measure(code: str, micro_batch: int, threads: int, steps: int) -> dict:
    """Train `steps` optimizer steps in this process; tokens and seconds of the training loop."""
    import torch

    from derivanim.corpus import load_corpus

    torch.set_num_threads(threads)
    module = training_module(code)
    counts = {"real": 0, "padded": 0}
    collate = module.collate

    def counting_collate(examples, pad_id):
        batch = collate(examples, pad_id)
        counts["real"] += int(batch["attention_mask"].sum())
        counts["padded"] += batch["attention_mask"].numel()
        return batch

    module.collate = counting_collate  # both versions look collate up by name when they batch
    rows = [row.to_dict() for row in load_corpus(DATA, split="train")]
    extra = {"checkpoint_every": 0} if code == "after" else {}
    with tempfile.TemporaryDirectory() as out:
        result = module.train("freeform", rows, [], out_dir=out, batch_size=micro_batch,
                              grad_accum=EFFECTIVE_BATCH // micro_batch, max_steps=steps, progress=False,
                              **RECIPE, **extra)
    seconds = result.log["seconds_per_step"] * steps
    return {"code": code, "micro_batch": micro_batch, "threads": threads, "steps": steps,
            "real_tokens": counts["real"], "padding": counts["padded"] - counts["real"],
            "seconds_per_step": round(seconds / steps, 1), "tokens_per_second": round(counts["real"] / seconds, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def padding_table(micro_batches=(2, 4, 8)) -> str:
    """Padding in one epoch's batches of the training split: rows in random order against length-grouped."""
    import random

    from derivanim.corpus import load_corpus
    from derivanim.model import load_tokenizer
    from derivanim.train import encode_example, length_grouped_batches

    tokenizer = load_tokenizer()
    lengths = [len(encode_example(tokenizer, "freeform", row.to_dict(), RECIPE["max_length"]).input_ids)
               for row in load_corpus(DATA, split="train")]

    def padding(batches):
        padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
        return 1 - sum(lengths) / padded

    lines = ["| micro-batch | padding, random order (before) | padding, length-grouped (after) |", "| --- | --- | --- |"]
    for size in micro_batches:
        order = random.Random(0).sample(range(len(lengths)), len(lengths))
        shuffled = [order[i:i + size] for i in range(0, len(order), size)]
        lines.append(f"| {size} | {padding(shuffled):.1%} | {padding(length_grouped_batches(lengths, size, seed=0, epoch=1)):.1%} |")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    lines = ["| code | micro-batch x accumulation | threads | real tokens | padding | s / optimizer step | "
             "real tokens / s | peak memory (GiB) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['code']} | {r['micro_batch']} x {EFFECTIVE_BATCH // r['micro_batch']} | {r['threads']} | "
                     f"{r['real_tokens']:,} | {r['padding'] / (r['real_tokens'] + r['padding']):.1%} | "
                     f"{r['seconds_per_step']} | {r['tokens_per_second']} | {r['peak_rss_gib']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1, help="optimizer steps per variant (16 rows each)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"CODE:MICRO_BATCH:THREADS,... ({DEFAULT_VARIANTS})")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure one variant, print JSON
    args = parser.parse_args()
    if args.one:
        code, micro_batch, threads = args.one.split(":")
        print(json.dumps(measure(code, int(micro_batch), int(threads), args.steps)))
        return
    results, load_before = [], os.getloadavg()
    for variant in args.variants.split(","):
        started = time.time()
        child = subprocess.run([sys.executable, __file__, "--one", variant, "--steps", str(args.steps)],
                               cwd=ROOT, capture_output=True, text=True)
        if child.returncode:
            sys.exit(f"{variant} failed:\n{child.stderr[-3000:]}")
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{variant}: {results[-1]['tokens_per_second']} tokens/s ({time.time() - started:.0f} s in all)", flush=True)
    load = f"load average (1, 5, 15 min) {load_before} before, {os.getloadavg()} after, on {os.cpu_count()} cores"
    report = (f"# Training speed, paper recipe on the original corpus\n\n`.venv/bin/python scripts/benchmark_train.py "
              f"--steps {args.steps} --variants {args.variants}`\n\n{table(results)}\n\n{load}\n\n"
              f"Padding in one epoch of batches (tokens, no training):\n\n{padding_table()}\n")
    print(report)
    OUT.write_text(report)


if __name__ == "__main__":
    main()
