"""Issue 13's model work on a CUDA GPU, in one run: what takes ~10 hours on this 2-core CPU takes minutes there.

1. The paper's condition: the free-form baseline trained on the original DerivativeAnimator corpus with the paper's
   recipe (LoRA r=64, alpha=128, lr 1e-4, effective batch 16, 5 epochs, 2,048-token sequences; SmolLM2-135M-Instruct,
   bf16 mixed precision), an adapter saved after every epoch; then each epoch adapter's scenes for the original test
   requests, greedy, 2,048 new tokens at most (derivanim.baseline.generate_scenes, one batch), written as
   scenes-epoch-K.jsonl.
2. The slots model's learning curve: the shipped recipe (r=8, alpha=16, lr 3e-4, batch 8, 2 epochs) on the first
   N rows of a fixed shuffle of the corpus's training rows, for each N.

Scores are computed where Manim runs (the scenes must be run and rendered):
    derivanim eval --systems baseline --baseline-scenes OUT/scenes-epoch-K.jsonl --dataset ... --split test
    python scripts/learning_curve.py --adapters OUT/curve-*

    python scripts/paper_on_gpu.py --original runs/original --corpus runs/corpus-paraphrase --out runs/gpu
"""

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from derivanim.baseline import generate_scenes
from derivanim.train import TrainConfig, load_rows, train

PAPER = TrainConfig(task="freeform", epochs=5, lora_r=64, lora_alpha=128, lr=1e-4, batch_size=8, grad_accum=2,
                    max_length=2048, log_every=1, checkpoint_every=0)
SHIPPED_SLOTS = TrainConfig(task="slots", epochs=2, lora_r=8, lora_alpha=16, lr=3e-4, batch_size=8, log_every=5,
                            checkpoint_every=0)
CURVE = (25, 50, 100, 200, 418)


def paper_condition(original: Path, out: Path, epochs: list[int], config: TrainConfig, max_new_tokens: int) -> None:
    folder = out / "freeform"
    started = time.time()
    train(config, original / "train.jsonl", original / "val.jsonl", folder, progress=False)
    print(f"freeform: trained {config.epochs} epochs in {time.time() - started:.0f} s", flush=True)
    requests = [row["instruction"] for row in load_rows(original / "test.jsonl")]
    for epoch in epochs:
        started = time.time()
        scenes = generate_scenes(requests, folder / f"epoch-{epoch}", max_new_tokens=max_new_tokens,
                                 batch_size=len(requests))
        with open(out / f"scenes-epoch-{epoch}.jsonl", "w", encoding="utf-8") as handle:
            for scene in scenes:
                handle.write(json.dumps({"request": scene.request, "text": scene.text, "tokens": scene.tokens,
                                         "seconds": scene.seconds, "finished": scene.finished,
                                         "model": f"{scene.model} + epoch-{epoch}"}) + "\n")
        finished = sum(scene.finished for scene in scenes)
        print(f"epoch {epoch}: {len(scenes)} scenes in {time.time() - started:.0f} s, {finished} finished", flush=True)


def learning_curve(corpus: Path, out: Path, sizes: list[int], config: TrainConfig) -> None:
    rows = load_rows(corpus / "train.jsonl")
    random.Random(0).shuffle(rows)
    for size in sizes:
        started = time.time()
        train(config, rows[:size], corpus / "val.jsonl", out / f"curve-{size}", progress=False)
        print(f"slots on {size} rows: {time.time() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, required=True, help="the imported original corpus (derivanim data import)")
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus for the slots learning curve")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", default="5,1,3,2,4", help="epoch adapters to generate scenes with, in this order")
    parser.add_argument("--curve", default=",".join(map(str, CURVE)), help="training rows of each slots model")
    parser.add_argument("--base-model", default=None, help="another base model (a folder; for a dry run on CPU)")
    parser.add_argument("--max-steps", type=int, default=None, help="a short run (a dry run on CPU)")
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    args = parser.parse_args()
    short = {"max_steps": args.max_steps} if args.max_steps else {}
    base = {"base_model": args.base_model} if args.base_model else {}
    args.out.mkdir(parents=True, exist_ok=True)
    epochs = [int(epoch) for epoch in args.epochs.split(",") if epoch]
    paper = replace(PAPER, **short, **base)
    if epochs:
        paper_condition(args.original, args.out, epochs, paper, args.max_new_tokens)
    sizes = [int(size) for size in args.curve.split(",") if size]
    learning_curve(args.corpus, args.out, sizes, replace(SHIPPED_SLOTS, **short, **base))


if __name__ == "__main__":
    main()
