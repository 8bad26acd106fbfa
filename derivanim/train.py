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
- a fixed seed for weights, dropout and data order; batches hold rows of similar length (little padding).

Every setting lives in TrainConfig; the command line's options are made from its fields.

A run can be stopped at any time and resumed (`resume=True`, `derivanim train --resume OUT`) with the
same result as an uninterrupted run: each epoch's batch order is a function of (seed, epoch), and a
checkpoint holds the LoRA weights, the optimizer, schedule and RNG states, and the place in the data.

Output folder OUT:
- the PEFT adapter (adapter_model.safetensors, adapter_config.json), the tokenizer, training_log.json,
  loss_curve.png and derivanim_adapter.json (task, base model, the TrainConfig, data hash, training time),
  written when the run ends;
- train_config.json (the TrainConfig) from the start, and training_log.json and loss_curve.png rewritten
  at every checkpoint, so a long run can be watched;
- epoch-K/: the adapter after epoch K, a complete adapter folder like OUT itself;
- checkpoints/: the latest step checkpoint (every checkpoint_every optimizer steps) and one per epoch end.
"""

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path

from derivanim.errors import InvalidInput, ModelUnavailable
from derivanim.model import ADAPTER_INFO, DEFAULT_BASE_MODEL, load_pretrained, package_versions
from derivanim.prompts import TASKS, Task, check_task, prompt_ids, response_text

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # Llama attention + MLP
IGNORE = -100  # label of a position that carries no loss
CONFIG_FILE = "train_config.json"
CHECKPOINTS = "checkpoints"


# ----------------------------------------------------------------------------- settings

def _setting(default=MISSING, **option):
    """A TrainConfig field; `option` holds the argparse keywords of its --option (help, type, choices)."""
    return field(default=default, metadata=option)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. Saved in full beside every adapter and checkpoint."""

    task: Task = _setting(choices=TASKS, help="slots: JSON slots (template-fill); freeform: the whole scene (the baseline)")
    base_model: str = _setting(DEFAULT_BASE_MODEL, help="smollm2-135m (offline), a Hugging Face id or a local folder")
    epochs: int = _setting(3, type=int, help="passes over the training rows")
    lora_r: int = _setting(16, type=int, help="LoRA rank")
    lora_alpha: int = _setting(32, type=int, help="LoRA scale numerator (the update is scaled by alpha/r)")
    lora_dropout: float = _setting(0.05, type=float, help="dropout on the LoRA input")
    lr: float = _setting(2e-4, type=float, help="peak learning rate (linear warmup, cosine decay to lr/10)")
    batch_size: int = _setting(8, type=int, help="rows per forward pass (micro-batch)")
    grad_accum: int = _setting(1, type=int, help="micro-batches per optimizer step (effective batch = batch size x this)")
    max_length: int | None = _setting(None, type=int, help="longest prompt + response in tokens; longer rows are dropped "
                                                           "(default: the model's context)")
    seed: int = _setting(0, type=int, help="seed of the LoRA weights, dropout and data order")
    quantize: str | None = _setting(None, choices=["4bit"], help="QLoRA (NF4) on CUDA; full-precision LoRA on CPU")
    warmup_steps: int | None = _setting(None, type=int, help="learning-rate warmup in optimizer steps (default: 3%%)")
    weight_decay: float = _setting(0.0, type=float, help="AdamW weight decay")
    max_steps: int | None = _setting(None, type=int, help="stop after N optimizer steps (a short run; the schedule "
                                                          "is fitted to N)")
    log_every: int = _setting(10, type=int, help="log the training loss every N optimizer steps")
    checkpoint_every: int = _setting(25, type=int, help="checkpoint every N optimizer steps (0: only at epoch ends)")


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


def data_hash(task: Task, *row_lists: list[dict]) -> str:
    """A short fingerprint of what an adapter learned from: each row's instruction and the task's response."""
    digest = hashlib.sha256()
    for rows in row_lists:
        for row in rows:
            digest.update(json.dumps([row["instruction"], response_text(task, row)], ensure_ascii=False).encode())
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


LENGTH_GROUP_BATCHES = 50  # rows are sorted by length within windows of this many batches (as HF's LengthGroupedSampler)


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int | None = None, epoch: int = 0) -> list[list[int]]:
    """Batches of example indices whose rows have similar lengths, so little of a batch is padding.

    With a seed, the rows are shuffled first and the batches after, both from (seed, epoch) alone: the
    order is random but reproducible, and a resumed run sees the same batches. Without one, the batches
    are in length order (for evaluation).
    """
    import numpy as np

    rng = np.random.default_rng([seed, epoch]) if seed is not None else None
    order = list(rng.permutation(len(lengths))) if rng else list(range(len(lengths)))
    window = batch_size * LENGTH_GROUP_BATCHES
    batches = []
    for start in range(0, len(order), window):
        by_length = sorted(order[start:start + window], key=lambda index: lengths[index], reverse=True)
        batches += [[int(i) for i in by_length[i:i + batch_size]] for i in range(0, len(by_length), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))] if rng else batches


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


def train(config: TrainConfig | Task, rows_train, rows_val, out_dir: str | Path = "runs/adapter", *,
          resume: bool = False, stop_after: int | None = None, progress: bool = True, **settings) -> TrainResult:
    """Train a LoRA adapter on corpus rows (lists of dicts or .jsonl paths) and save it in out_dir.

    config: a TrainConfig, or the task's name with any other settings as keywords
    (`train("slots", rows, [], epochs=2)`). resume=True continues from the latest checkpoint in
    out_dir/checkpoints (from the start when there is none); the config and data must be the run's own.
    stop_after=N ends this call right after optimizer step N, saving nothing more: what a kill there leaves.

    quantize="4bit" trains QLoRA (NF4, double quantisation, paged 8-bit AdamW) on a CUDA GPU; without
    CUDA it says so and trains full-precision LoRA.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    config = TrainConfig(task=config, **settings) if isinstance(config, str) else replace(config, **settings)
    check_task(config.task)
    if config.quantize not in (None, "4bit"):
        raise ValueError(f"quantize must be None or '4bit', not {config.quantize!r}")
    out_dir = Path(out_dir)
    if not resume and latest_checkpoint(out_dir):
        raise InvalidInput(f"{out_dir} holds the checkpoints of a run: resume it (--resume {out_dir}) "
                           "or choose another output folder")
    started = time.time()

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    use_4bit = config.quantize == "4bit" and cuda
    accelerator = Accelerator(mixed_precision="bf16" if bf16 and not use_4bit else "no")
    say = accelerator.print
    set_seed(config.seed)
    if config.quantize == "4bit" and not cuda:
        say("quantize='4bit': QLoRA (bitsandbytes NF4) needs a CUDA GPU and none is available; "
            "falling back to full-precision LoRA on CPU")

    # --- model and tokenizer
    if use_4bit:
        model, tokenizer = _load_4bit(config.base_model, accelerator)
    else:
        model, tokenizer = load_pretrained(config.base_model, dtype=torch.float32)
    # Batches are padded to their longest row, so the default limit costs nothing: the model's context.
    max_length = config.max_length or getattr(model.config, "max_position_embeddings", None) or 4096
    choose_pad_token(tokenizer)
    tokenizer.padding_side = "right"
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM",
    ))
    trainable, total = model.get_nb_trainable_parameters()
    say(f"{config.base_model}: {total / 1e6:.1f}M parameters, {trainable / 1e6:.2f}M trainable (LoRA r={config.lora_r})")

    # --- data
    rows_train, rows_val = load_rows(rows_train), load_rows(rows_val)
    train_examples, train_report = encode_rows(tokenizer, config.task, rows_train, max_length, "train", say)
    val_examples, val_report = encode_rows(tokenizer, config.task, rows_val, max_length, "val", say)
    if not train_examples:
        raise ValueError(f"no training row fits in max_length={max_length}")
    outside = _outside_constraint(tokenizer, config.task, rows_train)
    if outside:
        say(f"warning: {len(outside)} training responses are outside the decoding constraint, e.g. {outside[0]!r}")
    train_lengths = [len(example.input_ids) for example in train_examples]
    val_loader = DataLoader(val_examples, collate_fn=partial(collate, pad_id=tokenizer.pad_token_id),
                            batch_sampler=length_grouped_batches([len(e.input_ids) for e in val_examples], config.batch_size))

    # --- optimizer and schedule
    parameters = [p for p in model.parameters() if p.requires_grad]
    if use_4bit:
        import bitsandbytes as bnb

        raw_optimizer = bnb.optim.PagedAdamW8bit(parameters, lr=config.lr, weight_decay=config.weight_decay)
    else:
        raw_optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    model, optimizer, val_loader = accelerator.prepare(model, raw_optimizer, val_loader)
    # Each process takes every n-th batch; all take the same number, so they step together.
    batches_per_process = len(length_grouped_batches(train_lengths, config.batch_size, config.seed)) // accelerator.num_processes
    steps_per_epoch = math.ceil(batches_per_process / config.grad_accum)
    total_steps = min(config.epochs * steps_per_epoch, config.max_steps or sys.maxsize)
    warmup_steps = config.warmup_steps if config.warmup_steps is not None else max(1, round(0.03 * total_steps))
    # Stepped by hand once per optimizer step, so its clock is optimizer steps on any number of processes.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        raw_optimizer, lambda s: learning_rate(s, total_steps, config.lr, warmup_steps) / config.lr)

    # --- where the run stands: from the start, or from the latest checkpoint
    hash_of_data = data_hash(config.task, rows_train, rows_val)
    run = {"step": 0, "epoch": 1, "epoch_step": 0, "train_seconds": 0.0,
           "window": {"losses": [], "tokens": 0, "seconds": 0.0}, "epoch_losses": [],
           "log": {"task": config.task, "base_model": config.base_model, "steps": [], "epochs": [],
                   "truncation": {"train": train_report, "val": val_report}, "outside_constraint": len(outside)}}
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint:
        run = load_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler, config, hash_of_data)
        say(f"resuming from {checkpoint} (optimizer step {run['step']} of {total_steps})")
    elif resume:
        say(f"no checkpoint in {out_dir / CHECKPOINTS}: starting from step 0")
    log, window = run["log"], run["window"]
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n")

    def adapter_info() -> dict:
        """derivanim_adapter.json: what this adapter is and how it was made."""
        hyperparameters = {**asdict(config), "lora_targets": LORA_TARGETS, "max_length": max_length,
                           "warmup_steps": warmup_steps, "quantize": "4bit" if use_4bit else None,
                           "quantize_requested": config.quantize, "processes": accelerator.num_processes}
        epochs = log["epochs"]
        return {"task": config.task, "base_model": config.base_model, "hyperparameters": hyperparameters,
                "data_hash": hash_of_data, "train_rows": len(train_examples), "val_rows": len(val_examples),
                "steps": run["step"], "epoch": epochs[-1]["epoch"] if epochs else 0,
                "train_seconds": round(run["train_seconds"], 2),
                "final_val_loss": epochs[-1]["val_loss"] if epochs else None,
                "device": "cuda" if cuda else "cpu",
                "versions": package_versions("torch", "transformers", "peft", "accelerate")}

    def checkpoint_now(name: str) -> None:
        if accelerator.is_main_process:
            save_checkpoint(out_dir, name, accelerator.unwrap_model(model), optimizer, scheduler, run, config, hash_of_data)
        accelerator.wait_for_everyone()

    # --- the loop: epochs of optimizer steps, each step grad_accum micro-batches
    model.train()
    bar = tqdm(total=total_steps, initial=run["step"], desc=f"train {config.task}",
               disable=not (progress and accelerator.is_local_main_process))
    while run["epoch"] <= config.epochs and run["step"] < total_steps:
        epoch = run["epoch"]
        batches = length_grouped_batches(train_lengths, config.batch_size, config.seed, epoch)
        mine = batches[accelerator.process_index::accelerator.num_processes][:batches_per_process]
        steps = [mine[i:i + config.grad_accum] for i in range(0, len(mine), config.grad_accum)]
        for micro_batches in steps[run["epoch_step"]:]:  # those already taken in this epoch are skipped
            step_started, step_losses = time.time(), []
            for i, indices in enumerate(micro_batches):
                padded = collate([train_examples[j] for j in indices], tokenizer.pad_token_id)
                batch = {name: tensor.to(accelerator.device) for name, tensor in padded.items()}
                last = i == len(micro_batches) - 1
                with nullcontext() if last else accelerator.no_sync(model):  # gradients are exchanged once per step
                    loss = model(**batch).loss
                    accelerator.backward(loss / len(micro_batches))
                step_losses.append(accelerator.reduce(loss.detach(), "mean").item())
                window["tokens"] += int(batch["attention_mask"].sum())
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            run["step"] += 1
            run["epoch_step"] += 1
            seconds = time.time() - step_started
            run["train_seconds"] += seconds
            window["seconds"] += seconds
            window["losses"] += step_losses
            run["epoch_losses"] += step_losses
            bar.update(1)
            bar.set_postfix(loss=f"{step_losses[-1]:.4f}")
            if run["step"] % config.log_every == 0 or run["step"] == total_steps:
                log["steps"].append({"step": run["step"], "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                                     "train_loss": sum(window["losses"]) / len(window["losses"]),
                                     "tokens_per_second": round(window["tokens"] / window["seconds"], 1)})
                window.update(losses=[], tokens=0, seconds=0.0)
            if config.checkpoint_every and run["step"] % config.checkpoint_every == 0:
                checkpoint_now(f"step-{run['step']:06d}")
            if run["step"] == stop_after:
                bar.close()
                return TrainResult(out_dir=out_dir, log=log, seconds=time.time() - started)
            if run["step"] >= total_steps:
                break
        # --- the epoch's end: validation loss, the epoch's adapter, a checkpoint
        val_loss = evaluate(model, val_loader, accelerator) if val_examples else None
        epoch_losses = run["epoch_losses"]
        log["epochs"].append({"epoch": epoch, "step": run["step"], "train_loss": sum(epoch_losses) / max(1, len(epoch_losses)),
                              "val_loss": val_loss, "train_seconds": round(run["train_seconds"], 2)})
        say(f"epoch {epoch}: train loss {log['epochs'][-1]['train_loss']:.4f}"
            + ("" if val_loss is None else f", val loss {val_loss:.4f}"))
        run.update(epoch=epoch + 1, epoch_step=0, epoch_losses=[])
        if accelerator.is_main_process:
            _write_folder(out_dir / f"epoch-{epoch}",
                          lambda folder: save_adapter(accelerator.unwrap_model(model), tokenizer, folder, log, adapter_info()))
        checkpoint_now(f"epoch-{epoch}")
    bar.close()
    log["seconds"] = round(run["train_seconds"], 2)  # this run's training time, across resumes; evaluation excluded
    log["seconds_per_step"] = round(run["train_seconds"] / max(1, run["step"]), 3)

    # --- save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_adapter(accelerator.unwrap_model(model), tokenizer, out_dir, log, adapter_info())
        say(f"saved the adapter to {out_dir}")
    return TrainResult(out_dir=out_dir, log=log, seconds=time.time() - started)


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


# ----------------------------------------------------------------------------- saving and resuming

def _write_folder(folder: Path, write) -> None:
    """Call write(temporary_folder), then rename it to `folder`: a kill mid-write leaves the old one whole."""
    temporary, previous = folder.with_name(f".writing-{folder.name}"), folder.with_name(f".previous-{folder.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    write(temporary)
    if folder.exists():
        folder.rename(previous)
    temporary.rename(folder)
    shutil.rmtree(previous, ignore_errors=True)


def save_adapter(model, tokenizer, out_dir: Path, log: dict, info: dict) -> None:
    """Adapter weights + config, tokenizer, training log, loss curve and derivanim_adapter.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for config in model.peft_config.values():
        config.base_model_name_or_path = info["base_model"]  # the name derivanim loads, not a local GGUF folder
    # LoRA leaves the embeddings alone; saying so spares PEFT a hub lookup of the base model's config.
    model.save_pretrained(out_dir, save_embedding_layers=False)
    tokenizer.save_pretrained(out_dir)
    (out_dir / ADAPTER_INFO).write_text(json.dumps(info, indent=2) + "\n")
    save_log(log, out_dir)


def save_log(log: dict, folder: Path) -> None:
    (folder / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")
    plot_losses(log, folder / "loss_curve.png")


def save_checkpoint(out_dir: Path, name: str, model, optimizer, scheduler, run: dict, config: TrainConfig,
                    hash_of_data: str) -> None:
    """out_dir/checkpoints/NAME: LoRA weights, optimizer, schedule and RNG states, and `run` (where the run
    stands: step, epoch, steps taken in the epoch, the log so far). Older step checkpoints are removed; epoch
    ones are kept. The log and loss curve in out_dir are rewritten, so a long run can be watched."""
    import torch

    def write(folder: Path) -> None:
        model.save_pretrained(folder, save_embedding_layers=False)
        rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
                   folder / "training_state.pt")
        (folder / "run.json").write_text(json.dumps({**run, "config": asdict(config), "data_hash": hash_of_data}) + "\n")

    checkpoints = out_dir / CHECKPOINTS
    _write_folder(checkpoints / name, write)
    for old in [*checkpoints.glob("step-*"), *checkpoints.glob(".*")]:  # older steps, and what a kill left half-written
        if old.name != name:
            shutil.rmtree(old)
    save_log(run["log"], out_dir)


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The complete checkpoint of out_dir with the most optimizer steps (half-written ones are hidden)."""
    done = [(json.loads((folder / "run.json").read_text())["step"], folder)
            for folder in (Path(out_dir) / CHECKPOINTS).glob("[!.]*") if (folder / "run.json").is_file()]
    return max(done, key=lambda pair: pair[0])[1] if done else None


def load_checkpoint(folder: Path, model, optimizer, scheduler, config: TrainConfig, hash_of_data: str) -> dict:
    """Restore a checkpoint into the model, optimizer and schedule, set the RNG as it was; returns `run`."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    run = json.loads((folder / "run.json").read_text())
    saved, given = run.pop("config"), asdict(config)
    changed = [f"{key}={given[key]!r} (the run has {saved.get(key)!r})" for key in given if saved.get(key) != given[key]]
    if changed:
        raise InvalidInput(f"cannot resume {folder.parent.parent} with other settings: {', '.join(changed)}")
    if run.pop("data_hash") != hash_of_data:
        raise InvalidInput(f"cannot resume {folder.parent.parent} on other data than it was trained on")
    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["cpu"])  # dropout continues as it would have; one process's state on all
    if state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return run


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


# ----------------------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    """The training options, shared by `derivanim train` and `python -m derivanim.train` (for accelerate launch).

    One option per TrainConfig field. Options left out are absent from the parsed arguments (not filled with
    defaults), so --resume can tell the settings a command gives from those the run already has.
    """
    parser.add_argument("--data", default=None,
                        help="corpus folder or .jsonl (default: data/corpus); its train and val splits are used")
    parser.add_argument("--train", help="training rows (.jsonl); overrides --data")
    parser.add_argument("--val", help="validation rows (.jsonl); overrides --data")
    parser.add_argument("--out", help="output folder of the adapter, its checkpoints and epoch adapters")
    parser.add_argument("--resume", metavar="OUT",
                        help="continue the run in OUT from its latest checkpoint, with the run's own settings "
                             "(the same data must be given); OUT is also the output folder")
    parser.add_argument("--config", metavar="FILE",
                        help=f"take the settings from a {CONFIG_FILE} (as saved beside every adapter and "
                             "checkpoint); options given override them")
    parser.add_argument("--from-adapter", metavar="DIR",
                        help="retrain an adapter (the shipped one: derivanim/adapters/slots) with the settings it was "
                             f"trained with (its {CONFIG_FILE}); options given override them")
    for setting in fields(TrainConfig):
        option = dict(setting.metadata)
        if setting.default not in (MISSING, None):  # a None default is explained in the help itself
            option["help"] += f" (default: {setting.default})"
        parser.add_argument("--" + setting.name.replace("_", "-"), default=argparse.SUPPRESS, **option)


def saved_settings(path: Path | str, option: str) -> dict:
    """The settings saved beside a run or an adapter: a train_config.json, or a folder holding one."""
    path = Path(path)
    file = path / CONFIG_FILE if path.is_dir() else path
    if not file.is_file():
        raise InvalidInput(f"{option}: {path} holds no training settings ({CONFIG_FILE} is missing)")
    try:
        settings = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{option}: {file} is not JSON ({error.msg} at line {error.lineno})") from None
    unknown = set(settings) - {setting.name for setting in fields(TrainConfig)}
    if not isinstance(settings, dict) or unknown:
        raise InvalidInput(f"{option}: {file} has settings TrainConfig does not know: {', '.join(sorted(unknown))}")
    return settings


def training_config(given: dict, *saved: dict) -> TrainConfig:
    """The run's TrainConfig: the settings given (options on the command line) over saved ones (--config,
    --from-adapter, --resume: earlier ones win), over TrainConfig's defaults."""
    settings = {key: value for layer in (*reversed(saved), given) for key, value in layer.items()}
    if "task" not in settings:
        raise InvalidInput("train: --task is required (slots or freeform)")
    return TrainConfig(**settings)


def training_rows(data: str | None, train_file: str | None, val_file: str | None) -> tuple[list[dict], list[dict]]:
    """(train rows, validation rows): from .jsonl files, else the train and val splits of a corpus (default: ours)."""
    from derivanim.corpus import load_corpus

    def rows(path, split):
        if path is not None and str(path).endswith(".jsonl") and split is None:
            return load_rows(path)
        return [row.to_dict() for row in load_corpus(path, split=split)]

    return (rows(train_file, None) if train_file else rows(data, "train"),
            rows(val_file, None) if val_file else rows(data, "val"))


def main(argv: list[str] | None = None) -> None:
    """`accelerate launch -m derivanim.train --task slots ...`: `derivanim train` with the same options."""
    import sys

    from derivanim.cli import main as cli_main

    sys.exit(cli_main(["train", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
