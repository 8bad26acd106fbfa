"""Fine-tune a LoRA adapter for one task: "slots" (JSON slots) or "freeform" (the whole Manim scene).

One readable loop, top to bottom. `accelerate launch -m derivanim.train ...` runs the same loop on
several GPUs; plain `python -m derivanim.train ...` runs it on one device (CPU included).

What it gets right that the paper's fine-tuning got wrong:
- one prompt format: the tokenizer's chat template (derivanim.prompts), the same at inference;
- loss on the response only: labels are -100 on the prompt and on padding;
- the response ends with EOS and the EOS is labelled, so the model learns to stop;
- padding never hides EOS: positions are masked by attention_mask and labels, never by comparing ids,
  and a pad token distinct from EOS is used when the tokenizer has one;
- no silent truncation: a row whose prompt + response + EOS exceeds max_length is dropped, counted
  and reported (training_log.json: "truncation");
- a fixed seed for weights, dropout and data order.

Output folder: the PEFT adapter (adapter_model.safetensors, adapter_config.json), the tokenizer,
training_log.json, loss_curve.png and derivanim_adapter.json (task, base model, hyperparameters,
data hash, training time).
"""

import argparse
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from derivanim.errors import ModelUnavailable
from derivanim.model import ADAPTER_INFO, DEFAULT_BASE_MODEL, load_pretrained
from derivanim.prompts import Task, check_task, prompt_ids, response_text

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # Llama attention + MLP
IGNORE = -100  # label of a position that carries no loss


# ----------------------------------------------------------------------------- data

def load_rows(rows_or_path, split: str | None = None) -> list[dict]:
    """Corpus rows from a list of dicts or a .jsonl file; only those of `split` when it is given."""
    if isinstance(rows_or_path, (str, Path)):
        with open(rows_or_path, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    else:
        rows = list(rows_or_path)
    if split is not None:
        rows = [row for row in rows if row.get("split") == split]
    return rows


def data_hash(*row_lists: list[dict]) -> str:
    """A short fingerprint of the training data, so an adapter says exactly what it learned from."""
    digest = hashlib.sha256()
    for rows in row_lists:
        for row in rows:
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Example:
    """One tokenized row: labels are -100 on the prompt; the response and its final EOS carry the loss."""

    input_ids: list[int]
    labels: list[int]
    prompt_tokens: int
    response_tokens: int  # including EOS
    truncated: bool  # prompt + response + EOS did not fit in max_length (such rows are dropped)


def encode_example(tokenizer, task: Task, row: dict, max_length: int) -> Example:
    """Tokenize one row in the shared prompt format, with the EOS appended and labelled."""
    prompt = prompt_ids(tokenizer, task, row["instruction"])
    response = tokenizer(response_text(task, row), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = prompt + response
    labels = [IGNORE] * len(prompt) + response
    return Example(input_ids, labels, len(prompt), len(response), truncated=len(input_ids) > max_length)


def collate(examples: list[Example], pad_id: int) -> dict:
    """Right-pad a batch. Padding is masked by position (attention 0, label -100), whatever pad_id is."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[i, :n] = torch.tensor(example.input_ids)
        attention[i, :n] = 1
        labels[i, :n] = torch.tensor(example.labels)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def encode_rows(tokenizer, task: Task, rows: list[dict], max_length: int, name: str, say=print) -> tuple[list[Example], dict]:
    """Tokenize rows, drop those that do not fit, and report how many (and how long the rest are)."""
    encoded = [encode_example(tokenizer, task, row, max_length) for row in rows]
    kept = [example for example in encoded if not example.truncated]
    dropped = len(encoded) - len(kept)
    lengths = sorted(len(example.input_ids) for example in encoded) or [0]
    report = {
        "rows": len(encoded),
        "truncated": dropped,
        "truncation_rate": dropped / len(encoded) if encoded else 0.0,
        "max_length": max_length,
        "longest_tokens": lengths[-1],
        "median_tokens": lengths[len(lengths) // 2],
    }
    if dropped:
        message = (f"{name}: {dropped} of {len(encoded)} rows ({report['truncation_rate']:.1%}) do not fit in "
                   f"max_length={max_length} (longest: {lengths[-1]} tokens); they are dropped, not truncated")
        warnings.warn(message, stacklevel=2)
        say(f"warning: {message}")
    return kept, report


def choose_pad_token(tokenizer) -> None:
    """Pad with a token other than EOS when the tokenizer has one (e.g. SmolLM2's <|endoftext|>).

    Correctness does not depend on it (padding is masked by position), but a distinct pad keeps EOS
    unambiguous for any code that looks at ids, and Outlines' tokenizer wrapper no longer sets pad=EOS.
    """
    eos = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        return
    vocabulary = tokenizer.get_vocab()
    for candidate in (tokenizer.unk_token, "<|endoftext|>", "<pad>", "<unk>"):
        if candidate is not None and candidate in vocabulary and vocabulary[candidate] != eos:
            tokenizer.pad_token = candidate
            return
    tokenizer.pad_token = tokenizer.eos_token  # masked by position, so still correct


# ----------------------------------------------------------------------------- schedule

def learning_rate(step: int, total_steps: int, lr: float, warmup_steps: int) -> float:
    """Linear warmup, then cosine decay to lr/10 (nanoGPT's schedule)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr / 10 + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - lr / 10)


# ----------------------------------------------------------------------------- training

@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    log: dict
    seconds: float


def train(
    task: Task,
    rows_train,
    rows_val,
    base_model: str = DEFAULT_BASE_MODEL,
    out_dir: str | Path = "runs/adapter",
    epochs: int = 3,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lr: float = 2e-4,
    batch_size: int = 8,
    grad_accum: int = 1,
    max_length: int | None = None,
    seed: int = 0,
    quantize: str | None = None,
    log_every: int = 10,
    max_steps: int | None = None,
    warmup_steps: int | None = None,
    weight_decay: float = 0.0,
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter for `task` on corpus rows (lists of dicts or .jsonl paths) and save it in out_dir.

    quantize="4bit" trains QLoRA (NF4, double quantisation, paged 8-bit AdamW) on a CUDA GPU; without
    CUDA it says so and trains full-precision LoRA. max_length (prompt + response + EOS, in tokens)
    defaults to the model's context length; longer rows are dropped and reported. max_steps stops early.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    task = check_task(task)
    if quantize not in (None, "4bit"):
        raise ValueError(f"quantize must be None or '4bit', not {quantize!r}")
    out_dir = Path(out_dir)
    started = time.time()

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    use_4bit = quantize == "4bit" and cuda
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum, mixed_precision="bf16" if bf16 and not use_4bit else "no")
    say = accelerator.print
    set_seed(seed)
    if quantize == "4bit" and not cuda:
        say("quantize='4bit': QLoRA (bitsandbytes NF4) needs a CUDA GPU and none is available; "
            "falling back to full-precision LoRA on CPU")

    # --- model and tokenizer
    if use_4bit:
        model, tokenizer = _load_4bit(base_model, accelerator)
    else:
        model, tokenizer = load_pretrained(base_model, dtype=torch.float32)
    # Batches are padded to their longest row, so the default limit costs nothing: the model's context.
    max_length = max_length or getattr(model.config, "max_position_embeddings", None) or 4096
    choose_pad_token(tokenizer)
    tokenizer.padding_side = "right"
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(
        r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LORA_TARGETS,
        bias="none", task_type="CAUSAL_LM",
    ))
    trainable, total = model.get_nb_trainable_parameters()
    say(f"{base_model}: {total / 1e6:.1f}M parameters, {trainable / 1e6:.2f}M trainable (LoRA r={lora_r})")

    # --- data
    rows_train, rows_val = load_rows(rows_train), load_rows(rows_val)
    train_examples, train_report = encode_rows(tokenizer, task, rows_train, max_length, "train", say)
    val_examples, val_report = encode_rows(tokenizer, task, rows_val, max_length, "val", say)
    if not train_examples:
        raise ValueError(f"no training row fits in max_length={max_length}")
    outside = _outside_constraint(tokenizer, task, rows_train)
    if outside:
        say(f"warning: {len(outside)} training responses are outside the decoding constraint, e.g. {outside[0]!r}")
    pad_collate = partial(collate, pad_id=tokenizer.pad_token_id)
    train_loader = DataLoader(train_examples, batch_size=batch_size, shuffle=True, collate_fn=pad_collate,
                              generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(val_examples, batch_size=batch_size, shuffle=False, collate_fn=pad_collate)

    # --- optimizer and schedule
    parameters = [p for p in model.parameters() if p.requires_grad]
    if use_4bit:
        import bitsandbytes as bnb

        raw_optimizer = bnb.optim.PagedAdamW8bit(parameters, lr=lr, weight_decay=weight_decay)
    else:
        raw_optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, raw_optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / grad_accum)  # this process's share of the batches
    total_steps = min(epochs * steps_per_epoch, max_steps or sys.maxsize)
    warmup_steps = warmup_steps if warmup_steps is not None else max(1, round(0.03 * total_steps))
    # Stepped by hand once per optimizer step, so its clock is optimizer steps on any number of processes.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        raw_optimizer, lambda s: learning_rate(s, total_steps, lr, warmup_steps) / lr)

    # --- the loop
    log = {"task": task, "base_model": base_model, "steps": [], "epochs": [],
           "truncation": {"train": train_report, "val": val_report}, "outside_constraint": len(outside)}
    step, window, train_seconds = 0, [], 0.0
    bar = tqdm(total=total_steps, desc=f"train {task}", disable=not (progress and accelerator.is_local_main_process))
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_started, epoch_losses = time.time(), []
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            loss_value = accelerator.reduce(loss.detach(), "mean").item()
            window.append(loss_value)
            epoch_losses.append(loss_value)
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if step % log_every == 0 or step == total_steps:
                entry = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                         "train_loss": sum(window) / len(window)}
                log["steps"].append(entry)
                window = []
            if step >= total_steps:
                break
        train_seconds += time.time() - epoch_started
        val_loss = evaluate(model, val_loader, accelerator) if val_examples else None
        log["epochs"].append({"epoch": epoch, "step": step, "train_loss": sum(epoch_losses) / max(1, len(epoch_losses)),
                              "val_loss": val_loss, "seconds": round(time.time() - epoch_started, 2)})
        say(f"epoch {epoch}: train loss {log['epochs'][-1]['train_loss']:.4f}"
            + ("" if val_loss is None else f", val loss {val_loss:.4f}"))
        if step >= total_steps:
            break
    bar.close()
    seconds = time.time() - started
    log["seconds"] = round(seconds, 2)
    log["seconds_per_step"] = round(train_seconds / max(1, step), 3)  # training only, evaluation excluded

    # --- save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        hyperparameters = {
            "epochs": epochs, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
            "lora_targets": LORA_TARGETS, "lr": lr, "batch_size": batch_size, "grad_accum": grad_accum,
            "max_length": max_length, "seed": seed, "quantize": "4bit" if use_4bit else None,
            "quantize_requested": quantize, "max_steps": max_steps, "warmup_steps": warmup_steps,
            "weight_decay": weight_decay, "processes": accelerator.num_processes,
        }
        save_adapter(accelerator.unwrap_model(model), tokenizer, out_dir, log, {
            "task": task,
            "base_model": base_model,
            "hyperparameters": hyperparameters,
            "data_hash": data_hash(rows_train, rows_val),
            "train_rows": len(train_examples),
            "val_rows": len(val_examples),
            "steps": step,
            "train_seconds": round(seconds, 2),
            "final_val_loss": log["epochs"][-1]["val_loss"] if log["epochs"] else None,
            "device": "cuda" if cuda else "cpu",
            "versions": _versions(),
        })
        say(f"saved the adapter to {out_dir}")
    return TrainResult(out_dir=out_dir, log=log, seconds=seconds)


def evaluate(model, loader, accelerator) -> float:
    """Mean loss per labelled token over a data loader (every process's share gathered)."""
    import torch

    model.eval()
    total_loss, total_tokens = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
    with torch.no_grad():
        for batch in loader:
            tokens = (batch["labels"][:, 1:] != IGNORE).sum()  # the model shifts labels by one
            total_loss += model(**batch).loss.float() * tokens
            total_tokens += tokens
    model.train()
    total_loss = accelerator.reduce(total_loss, "sum")
    total_tokens = accelerator.reduce(total_tokens, "sum")
    return (total_loss / total_tokens.clamp(min=1)).item()


def save_adapter(model, tokenizer, out_dir: Path, log: dict, info: dict) -> None:
    """Adapter weights + config, tokenizer, training log, loss curve and derivanim_adapter.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for config in model.peft_config.values():
        config.base_model_name_or_path = info["base_model"]  # the name derivanim loads, not a local GGUF folder
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    (out_dir / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")
    plot_losses(log, out_dir / "loss_curve.png")


def plot_losses(log: dict, path: Path) -> None:
    """Train loss every log_every steps and validation loss per epoch, against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot([s["step"] for s in log["steps"]], [s["train_loss"] for s in log["steps"]], label="train (mean of the last steps)")
    epochs = [e for e in log["epochs"] if e["val_loss"] is not None]
    if epochs:
        axes.plot([e["step"] for e in epochs], [e["val_loss"] for e in epochs], "o-", label="validation (per epoch)")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss per response token")
    axes.set_title(f"LoRA fine-tuning, task {log['task']!r}, base {log['base_model']}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _load_4bit(base_model: str, accelerator):
    """QLoRA's base: NF4 weights with double quantisation, bf16 compute, ready for k-bit training."""
    import torch

    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelUnavailable("quantize='4bit' needs bitsandbytes: pip install 'derivanim[qlora]'") from None
    from peft import prepare_model_for_kbit_training

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    model, tokenizer = load_pretrained(base_model, dtype=torch.bfloat16, quantization_config=config,
                                       device_map={"": accelerator.local_process_index})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True), tokenizer


def _outside_constraint(tokenizer, task: Task, rows: list[dict]) -> list[str]:
    """Slots responses that constrained decoding could not produce (the model would learn them in vain)."""
    if task != "slots":
        return []
    from derivanim.model_filler import SlotsConstraint

    try:
        constraint = SlotsConstraint(tokenizer)
    except Exception as error:  # the check is advice; training does not depend on it
        warnings.warn(f"could not check responses against the decoding constraint: {error}", stacklevel=2)
        return []
    return [text for text in (response_text(task, row) for row in rows) if not constraint.accepts(text)]


def _versions() -> dict:
    import accelerate
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "accelerate": accelerate.__version__}


# ----------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    """The training options, shared by `derivanim train` and `python -m derivanim.train` (for accelerate launch)."""
    parser.add_argument("--task", choices=["slots", "freeform"], required=True,
                        help="slots: JSON slots (template-fill); freeform: the whole scene (the baseline)")
    parser.add_argument("--data", default=None,
                        help="corpus folder or .jsonl (default: data/corpus); its train and val splits are used")
    parser.add_argument("--train", help="training rows (.jsonl); overrides --data")
    parser.add_argument("--val", help="validation rows (.jsonl); overrides --data")
    parser.add_argument("--out", required=True, help="output folder of the adapter")
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL,
                        help="smollm2-135m (default, offline), a Hugging Face id or a local folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-length", type=int, help="longest prompt + response in tokens (default: the model's context)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantize", choices=["4bit"], help="QLoRA (NF4) on CUDA; full-precision LoRA on CPU")
    parser.add_argument("--log-every", type=int, default=10, help="log the training loss every N steps")
    parser.add_argument("--max-steps", type=int, help="stop after N optimiser steps (a short run)")


def run(args) -> TrainResult:
    """Train from parsed arguments."""
    from derivanim.corpus import load_corpus

    def rows(path, split):
        if path is not None and str(path).endswith(".jsonl") and split is None:
            return load_rows(path)
        return [row.to_dict() for row in load_corpus(path, split=split)]

    rows_train = rows(args.train, None) if args.train else rows(args.data, "train")
    rows_val = rows(args.val, None) if args.val else rows(args.data, "val")
    return train(args.task, rows_train, rows_val, base_model=args.base_model, out_dir=args.out, epochs=args.epochs,
                 lora_r=args.lora_r, lora_alpha=args.lora_alpha, lr=args.lr, batch_size=args.batch_size,
                 grad_accum=args.grad_accum, max_length=args.max_length, seed=args.seed, quantize=args.quantize,
                 log_every=args.log_every, max_steps=args.max_steps)


def main(argv: list[str] | None = None) -> None:
    """`accelerate launch -m derivanim.train --task slots ...`: the same options as `derivanim train`."""
    parser = argparse.ArgumentParser(prog="python -m derivanim.train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
