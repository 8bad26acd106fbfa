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
    import torch
    from transformers import GenerationConfig

    from derivanim.model import load_for_task
    from derivanim.prompts import prompt_ids

    if not request or not request.strip():
        raise InvalidInput("the request is empty")
    adapter = None if adapter_dir is None else str(Path(adapter_dir).expanduser().resolve())
    model, tokenizer, description = load_for_task("freeform", base_model, adapter)
    ids = prompt_ids(tokenizer, "freeform", request)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor([ids], device=model.device),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=model.device),
            generation_config=config,
        )
    seconds = time.perf_counter() - started
    generated = output[0, len(ids):].tolist()
    return SceneGeneration(
        request=request,
        text=tokenizer.decode(generated, skip_special_tokens=True),
        tokens=len(generated),
        seconds=seconds,
        finished=bool(generated) and generated[-1] == tokenizer.eos_token_id,
        model=description,
    )
