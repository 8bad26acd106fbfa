"""derivanim.llama_runtime computes what transformers' LlamaForCausalLM computes, tokenizes as its tokenizer does,
and is what the slots filler runs in a cold process (without importing transformers)."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from derivanim import llama_runtime
from derivanim.prompts import prompt_ids

REQUESTS = ["Teach the product rule with x*sin(x)", "derivative of atan(x) on [-2, 2] at x = 1.5",
            "héllo ✓ e^(x^2) 😀 — ∫ x dx", "  spaces\tand\nnewlines  ", "<|im_end|> is not a special token here"]


@pytest.fixture(scope="module")
def both(tiny_model_dir):
    """(runtime model, its tokenizer, transformers model, its tokenizer) of the tiny Llama."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = llama_runtime.load(tiny_model_dir)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tokenizer, reference, AutoTokenizer.from_pretrained(tiny_model_dir)


def test_the_tokenizer_writes_and_reads_prompts_as_transformers_does(both):
    _, tokenizer, _, reference = both
    for request in REQUESTS:
        ids = prompt_ids(tokenizer, "slots", request)
        assert ids == prompt_ids(reference, "slots", request)
        assert tokenizer.decode(ids) == reference.decode(ids)
        assert tokenizer.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    assert tokenizer.eos_token_id == reference.eos_token_id and len(tokenizer) == len(reference)


def test_logits_equal_transformers_with_a_cache_grown_cropped_and_copied(both):
    """Prefill, several tokens after a cache (the masked case), one token, a crop, and a copy of the cache: the same
    logits each time (to float rounding)."""
    import torch
    from transformers import DynamicCache

    model, tokenizer, reference, _ = both
    ids = prompt_ids(tokenizer, "slots", REQUESTS[0])
    ours, theirs = model.new_cache(), DynamicCache(config=reference.config)

    def compare(tokens, ours_cache, theirs_cache):
        with torch.no_grad():
            mine = model(input_ids=torch.tensor([tokens]), cache=ours_cache).logits
            expected = reference(input_ids=torch.tensor([tokens]), cache=theirs_cache, use_cache=True).logits
        assert mine.shape == expected.shape
        assert torch.allclose(mine, expected, atol=1e-5, rtol=1e-4), float((mine - expected).abs().max())

    compare(ids[:12], ours, theirs)
    compare(ids[12:], ours, theirs)
    compare([5], ours, theirs)
    ours.crop(-4)
    theirs.crop(-4)
    assert ours.get_seq_length() == theirs.get_seq_length() == len(ids) - 3
    compare([7, 8, 9], copy.deepcopy(ours), copy.deepcopy(theirs))
    compare([7], ours, theirs)  # the copies left the originals as they were
    with torch.no_grad():
        last = model(input_ids=torch.tensor([ids]), cache=model.new_cache(), logits_to_keep=1).logits
        hidden = model.get_decoder()(input_ids=torch.tensor([ids]), cache=model.new_cache()).last_hidden_state
    assert last.shape == (1, 1, len(tokenizer))
    assert torch.allclose(last[0, -1], model.get_output_embeddings()(hidden[0, -1]))


def test_only_a_plain_llama_with_its_files_is_supported(tiny_model_dir, tmp_path):
    assert llama_runtime.supports(tiny_model_dir)
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    for change in ({"model_type": "mistral"}, {"rope_scaling": {"type": "linear", "factor": 2.0}},
                   {"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4}}, {"attention_bias": True},
                   {"mlp_bias": True}, {"hidden_act": "gelu"}):
        folder = tmp_path / "variant"
        shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        assert not llama_runtime.supports(folder), change
    (tmp_path / "variant" / "config.json").write_text(json.dumps(config))
    assert llama_runtime.supports(tmp_path / "variant")
    (tmp_path / "variant" / "tokenizer.json").unlink()
    assert not llama_runtime.supports(tmp_path / "variant")
    assert not llama_runtime.supports(tmp_path / "nowhere")


def test_int8_weights_work_on_the_runtimes_model(tiny_model_dir):
    from derivanim.model_filler import fill_slots

    fill = fill_slots("Animate the derivative of x^3*sin(x)", base_model=tiny_model_dir, int8=True)
    assert fill.tokens > 0 and "(int8)" in fill.model


@pytest.mark.slow
def test_a_cold_fill_from_words_imports_no_transformers(tmp_path):
    """The shipped adapter filling a request in words in a fresh process: the runtime's model, and transformers,
    PEFT and torch._dynamo never imported (the model caches already built by the suite's other tests or here)."""
    script = (
        "import sys\n"
        "from derivanim.api import fill\n"
        "animation = fill('Teach the product rule with x*sin(x)')\n"
        "print(animation.slots.function)\n"
        "print(sorted(name for name in ('transformers', 'peft', 'torch._dynamo', 'outlines') if name in sys.modules))\n"
    )
    subprocess.run([sys.executable, "-c", "from derivanim.model import load_for_task; "
                    "from derivanim.api import shipped_slots_adapter; "
                    "load_for_task('slots', adapter_dir=str(shipped_slots_adapter()), runtime=True)"], check=True)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.splitlines() == ["x*sin(x)", "[]"]
