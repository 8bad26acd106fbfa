"""The free-form baseline: the fine-tuned model writes the whole Manim scene, as in the paper.

Kept only to compare with the template-filling pipeline on the same test set and metrics: greedy
decoding, max_new_tokens=2048 by default (the paper's setting), no constraint and no repair. The prompt
is the shared format of derivanim.prompts with the "freeform" task.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from derivanim.errors import InvalidInput

PAPER_MAX_NEW_TOKENS = 2048


@dataclass(frozen=True)
class SceneGeneration:
    """One free-form generation: the text exactly as emitted."""

    request: str
    text: str
    tokens: int  # tokens generated, a final EOS included
    seconds: float  # generation only, not model loading
    finished: bool  # the model emitted EOS before max_new_tokens
    model: str


def generate_scene(request: str, adapter_dir: str | Path | None, base_model: str | None = None,
                   max_new_tokens: int = PAPER_MAX_NEW_TOKENS) -> SceneGeneration:
    """Generate a whole scene for `request` with a freeform adapter (None: the base model alone), greedily.

    Raises ModelUnavailable when the model is missing or the adapter was trained for another task.
    """
    return generate_scenes([request], adapter_dir, base_model, max_new_tokens)[0]


def generate_scenes(requests: list[str], adapter_dir: str | Path | None, base_model: str | None = None,
                    max_new_tokens: int = PAPER_MAX_NEW_TOKENS, batch_size: int = 1) -> list[SceneGeneration]:
    """generate_scene for many requests, `batch_size` at a time (left-padded, greedy).

    Decoding one sequence on a CPU is bound by reading the weights, so a batch of 16 costs little more
    per step than one sequence: the evaluation uses batches. Each generation's `seconds` is then the wall
    time of its batch (what that request waited), not an unbatched latency.
    """
    import torch
    from transformers import GenerationConfig

    from derivanim.model import load_for_task
    from derivanim.prompts import prompt_ids

    if any(not request or not request.strip() for request in requests):
        raise InvalidInput("the request is empty")
    adapter = None if adapter_dir is None else str(Path(adapter_dir).expanduser().resolve())
    model, tokenizer, description = load_for_task("freeform", base_model, adapter)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=pad_id)
    results = []
    for first in range(0, len(requests), batch_size):
        batch = requests[first:first + batch_size]
        prompts = [prompt_ids(tokenizer, "freeform", request) for request in batch]
        width = max(map(len, prompts))
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=model.device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=model.device)
        started = time.perf_counter()
        with torch.no_grad():
            output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        seconds = time.perf_counter() - started
        for request, row in zip(batch, output[:, width:].tolist()):
            finished = tokenizer.eos_token_id in row
            generated = row[: row.index(tokenizer.eos_token_id) + 1] if finished else row
            results.append(SceneGeneration(
                request=request, text=tokenizer.decode(generated, skip_special_tokens=True), tokens=len(generated),
                seconds=seconds, finished=finished, model=description))
    return results
