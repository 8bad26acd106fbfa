"""The model side: prompt format, tokenization and labels, LoRA training, constrained slots, the baseline.

A tiny random Llama (tests/tiny_model.py) stands in for a real base model; only the tests marked slow
load SmolLM2-135M itself.
"""

import copy
import json
import math
import random

import pytest

from derivanim.errors import InvalidInput, ModelUnavailable
from derivanim.grammar import expression_parser, parse_function
from derivanim.model_filler import (RequestLookup, SlotsConstraint, allowed_tokens, constrained_greedy,
                                    fill_slots, max_response_tokens)
from derivanim.prompts import FALLBACK_CHAT_TEMPLATE, format_number, format_refusal, format_slots, prompt_ids, prompt_text
from derivanim.slots import REFUSALS, Slots
from derivanim.train import IGNORE, collate, encode_example, encode_rows, train

from tiny_model import LONG_CODE, corpus_rows, smollm2_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def constraint(tokenizer):
    return SlotsConstraint(tokenizer)


@pytest.fixture(scope="module")
def slots_run(tiny_model_dir, tmp_path_factory):
    """A slots adapter trained on the tiny model for a few steps; one row is too long and must be dropped."""
    rows = corpus_rows(8)
    too_long = dict(rows[0], instruction="Animate the derivative, " + "slowly and " * 200 + "of x^2")
    out = tmp_path_factory.mktemp("slots-adapter")
    with pytest.warns(UserWarning, match="1 of 9 rows"):
        return train("slots", rows + [too_long], corpus_rows(2, split="val"), base_model=tiny_model_dir, out_dir=out,
                     epochs=3, batch_size=4, lr=5e-3, log_every=1, max_length=256, progress=False)


# ----------------------------------------------------------------------------- prompt format

def test_format_slots_is_compact_ordered_and_rounded():
    text = format_slots({"function": "x^2", "variable": "x", "name": "f", "x_min": -3.0, "x_max": 3.14159, "x0": -0.0001})
    assert text == '{"function":"x^2","variable":"x","name":"f","x_min":-3,"x_max":3.142,"x0":0}'
    assert Slots.model_validate_json(text).x_max == pytest.approx(3.142)
    assert [format_number(v) for v in (2.5, -1.25, 10.0, 1 / 3)] == ["2.5", "-1.25", "10", "0.333"]


def test_prompt_uses_the_chat_template_with_a_system_message(tokenizer):
    text = prompt_text(tokenizer, "slots", "Animate sin(x^2)")
    assert text.startswith("<|im_start|>system\n") and "JSON" in text
    assert text.endswith("<|im_start|>user\nAnimate sin(x^2)<|im_end|>\n<|im_start|>assistant\n")
    assert "Manim" in prompt_text(tokenizer, "freeform", "Animate sin(x^2)")


def test_a_tokenizer_without_template_gets_the_fallback(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    text = prompt_text(bare, "slots", "Animate x^2")
    assert bare.chat_template == FALLBACK_CHAT_TEMPLATE
    assert "### System:\n" in text and text.endswith("### User:\nAnimate x^2\n\n### Assistant:\n")


# ----------------------------------------------------------------------------- labels and truncation

def test_only_the_response_and_its_eos_carry_labels(tokenizer):
    row = corpus_rows(1)[0]
    example = encode_example(tokenizer, "slots", row, max_length=512)
    prompt = prompt_ids(tokenizer, "slots", row["instruction"])
    assert example.input_ids[: len(prompt)] == prompt
    assert example.labels[: len(prompt)] == [IGNORE] * len(prompt)
    response = example.input_ids[len(prompt):]
    assert example.labels[len(prompt):] == response
    assert response[-1] == tokenizer.eos_token_id and example.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(response[:-1]) == format_slots(row["slots"])
    assert not example.truncated


def test_padding_is_masked_by_position_so_eos_keeps_its_label(tokenizer):
    short = encode_example(tokenizer, "slots", corpus_rows(1)[0], 512)
    longer = encode_example(tokenizer, "freeform", corpus_rows(1, code=LONG_CODE[:400])[0], 512)
    assert len(short.input_ids) < len(longer.input_ids)
    batch = collate([short, longer], pad_id=tokenizer.eos_token_id)  # the worst case: padding with EOS itself
    n = len(short.input_ids)
    assert batch["attention_mask"][0, :n].all() and not batch["attention_mask"][0, n:].any()
    assert (batch["labels"][0, n:] == IGNORE).all()
    assert batch["labels"][0, n - 1].item() == tokenizer.eos_token_id  # EOS stays labelled
    assert (batch["labels"][1] != IGNORE).sum() == len(longer.input_ids) - longer.prompt_tokens


def test_rows_that_do_not_fit_are_dropped_and_reported(tokenizer):
    rows = corpus_rows(3, code="from manim import *\n") + corpus_rows(1, code=LONG_CODE)
    with pytest.warns(UserWarning, match="1 of 4 rows"):
        kept, report = encode_rows(tokenizer, "freeform", rows, max_length=256, name="train", say=lambda _: None)
    assert len(kept) == 3 and report["truncated"] == 1 and report["truncation_rate"] == 0.25
    assert report["longest_tokens"] > 256


# ----------------------------------------------------------------------------- the decoding constraint

@pytest.mark.parametrize("function", [
    "sin(x^2)", "3x^2 + 2cos(x)", "x*sin(x)", "x sin(x)", "(x+1)(x-1)", "e^(-x^2)", "sin^2(x)",
    "ln(sqrt(1+x^2))", "exp(sin(cos(x^2)))", "x**2*sin(x)", "1/(1+e^-x)", "2pi x", "x(x+1)", "t^3 - 2t",
])
def test_the_constraint_accepts_common_functions(constraint, function):
    assert constraint.accepts(format_slots({"function": function, "x_min": -2, "x_max": 2, "x0": 1}))


@pytest.mark.parametrize("function", ["sinx", "exp", "six", "ex", "sin(x", "x·2", "sin(sin(sin(sin(x))))", "x" * 101])
def test_the_constraint_rejects_what_the_parser_would_read_differently(constraint, function):
    assert not constraint.accepts(format_slots({"function": function, "x_min": -2, "x_max": 2, "x0": 1}))


def test_the_constraint_holds_the_response_format(constraint):
    good = '{"function":"x^2","variable":"x","name":"f","x_min":-3,"x_max":3,"x0":1}'
    assert constraint.accepts(good)
    assert not constraint.accepts(good.replace(",", ", "))  # no whitespace
    assert not constraint.accepts(good.replace('"x0":1', '"x0":1.23456'))  # 3 decimals at most
    assert not constraint.accepts(good.replace('"variable":"x","name":"f",', ""))
    for reason in REFUSALS:
        assert constraint.accepts(format_refusal(reason))
    assert not constraint.accepts('{"function":null,"reason":"boring"}')
    assert not constraint.accepts('{"function":null,"variable":"x","name":"f","x_min":-3,"x_max":3,"x0":1}')


def test_allowed_tokens_are_those_the_llguidance_mask_leaves(constraint):
    import llguidance.torch
    import torch

    vocab = constraint.llg_tokenizer.vocab_size
    matcher = constraint.matcher()
    for text in ('{"function":"', 'sin(x', '^2)","variable":"x","name":"f","x_min":'):
        assert matcher.consume_tokens(constraint.llg_tokenizer.tokenize_str(text))
        bitmask = llguidance.torch.allocate_token_bitmask(1, vocab)
        llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
        logits = torch.zeros(vocab)
        llguidance.torch.apply_token_bitmask_inplace(logits, bitmask[0])
        expected = torch.isfinite(logits).nonzero().flatten()
        assert 1 < len(expected) < vocab and torch.equal(allowed_tokens(matcher, vocab), expected)


def test_random_walks_through_the_constraint_always_finish_and_parse(constraint):
    """Whatever tokens a model picks among the allowed ones, it ends in bounded time with grammatical slots or a
    refusal."""
    rng = random.Random(0)
    refusals = 0
    for _ in range(40):
        matcher, tokens = constraint.matcher(), []
        while True:
            token = int(rng.choice(allowed_tokens(matcher, constraint.llg_tokenizer.vocab_size)))
            if token == constraint.llg_tokenizer.eos_token:
                break
            assert matcher.consume_token(token) and not matcher.is_error(), matcher.get_error()
            tokens.append(token)
            assert len(tokens) < max_response_tokens()
        assert matcher.is_accepting()
        answer = json.loads(constraint.llg_tokenizer.decode_str(tokens))
        if answer["function"] is None:
            assert set(answer) == {"function", "reason"} and answer["reason"] in REFUSALS
            refusals += 1
            continue
        slots = Slots.model_validate(answer)
        expression_parser().parse(slots.function)  # syntax is guaranteed; meaning (one variable...) is verify's job
    assert 0 < refusals < 40  # both answers are open to the model


# ----------------------------------------------------------------------------- training

def test_training_writes_a_complete_adapter_folder(slots_run, tiny_model_dir):
    out = slots_run.out_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
                 "training_log.json", "loss_curve.png", "derivanim_adapter.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "derivanim_adapter.json").read_text())
    assert info["task"] == "slots" and info["base_model"] == tiny_model_dir
    assert info["hyperparameters"]["lora_r"] == 16 and info["hyperparameters"]["seed"] == 0
    assert len(info["data_hash"]) == 16 and info["train_rows"] == 8
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == tiny_model_dir


def test_training_log_has_finite_decreasing_losses_and_the_truncation_report(slots_run):
    log = json.loads((slots_run.out_dir / "training_log.json").read_text())
    assert [s["step"] for s in log["steps"]] == list(range(1, 7))  # 8 rows, batch 4, 3 epochs, logged every step
    losses = [s["train_loss"] for s in log["steps"]] + [e["val_loss"] for e in log["epochs"]]
    assert all(math.isfinite(loss) for loss in losses)
    assert log["epochs"][-1]["train_loss"] < log["epochs"][0]["train_loss"]
    assert log["truncation"]["train"]["truncated"] == 1 and log["truncation"]["train"]["rows"] == 9
    assert log["outside_constraint"] == 0


def test_training_is_reproducible_with_a_seed(tiny_model_dir, tmp_path):
    runs = [train("slots", corpus_rows(4), [], base_model=tiny_model_dir, out_dir=tmp_path / str(i), epochs=1,
                  batch_size=2, lora_dropout=0.1, log_every=1, progress=False).log["steps"] for i in range(2)]
    assert [s["train_loss"] for s in runs[0]] == [s["train_loss"] for s in runs[1]]


def test_qlora_falls_back_to_lora_without_cuda(tiny_model_dir, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 4-bit would really run")
    result = train("freeform", corpus_rows(2), [], base_model=tiny_model_dir, out_dir=tmp_path, epochs=1,
                   batch_size=2, max_steps=1, quantize="4bit", progress=False)
    assert "falling back to full-precision LoRA" in capsys.readouterr().out
    info = json.loads((result.out_dir / "derivanim_adapter.json").read_text())
    assert info["hyperparameters"]["quantize"] is None and info["hyperparameters"]["quantize_requested"] == "4bit"


# ----------------------------------------------------------------------------- generation

def _check_fill(fill, constraint):
    """Valid slots, or a well-formed refusal (a random model may answer either)."""
    assert constraint.accepts(fill.emitted)
    assert 0 < fill.tokens <= max_response_tokens() and fill.seconds > 0
    if fill.slots is None:
        assert fill.refusal in REFUSALS and fill.emitted == format_refusal(fill.refusal)
        return
    assert isinstance(fill.slots, Slots) and fill.refusal is None
    try:
        parse_function(fill.slots.function, variable=fill.slots.variable, name=fill.slots.name)
    except InvalidInput as error:  # the constraint guarantees syntax, not meaning
        assert not str(error).startswith("cannot read"), error


def test_fill_slots_with_a_random_model_still_gives_valid_slots(tiny_model_dir, constraint):
    fill = fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir)
    _check_fill(fill, constraint)


def test_fill_slots_with_an_adapter(slots_run, constraint):
    fill = fill_slots("Animate the derivative of f(x) = x^2", adapter_dir=slots_run.out_dir)
    _check_fill(fill, constraint)
    assert str(slots_run.out_dir) in fill.model


def _outlines_generate(request, adapter_dir=None, base_model=None, int8=False, refused=False):
    """The slots text from transformers' generate with Outlines' logits processor: one pass per token, under the
    grammar fill_slots decodes `request` with (the functions it writes or says, if any; the branch, slots or refusal,
    that fill_slots chose from the refusal share)."""
    import outlines
    import torch
    from outlines.types import CFG
    from transformers import GenerationConfig, LogitsProcessorList

    from derivanim.model_filler import MAX_FUNCTION_CHARS, _slots_decoder, request_functions, slots_grammar

    decoder = _slots_decoder(base_model, adapter_dir and str(adapter_dir), int8, runtime=False)
    model, tokenizer = decoder.model, decoder.tokenizer
    functions = request_functions(request)
    grammar = CFG(slots_grammar(functions=functions, answers="refusal" if refused else "slots"))
    processor = outlines.Generator(outlines.from_transformers(model, tokenizer), grammar).logits_processor
    ids = prompt_ids(tokenizer, "slots", request)
    processor.reset()
    longest = max([MAX_FUNCTION_CHARS, *map(len, functions)])
    config = GenerationConfig(max_new_tokens=max_response_tokens(longest), do_sample=False, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.eos_token_id)
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        output = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                                generation_config=config, logits_processor=LogitsProcessorList([processor]))
    return tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)


@pytest.mark.parametrize("request_text", ["Teach the product rule with x*sin(x)", "g(t) = t^2 - 3t on [-2, 5]"])
def test_fast_forward_decoding_writes_what_token_by_token_decoding_writes(tiny_model_dir, request_text):
    fill = fill_slots(request_text, base_model=tiny_model_dir)
    assert fill.emitted == _outlines_generate(request_text, base_model=tiny_model_dir, refused=fill.slots is None)
    assert fill.forward_passes < fill.tokens  # the forced keys did not each cost a pass


def test_request_lookup_drafts_the_rest_of_the_function_from_the_request(tokenizer):
    lookup = RequestLookup(tokenizer, "Explain the derivative of: f(x) = x^2*ln(x + 1) on [-1, 3]", max_chars=12)

    def draft(text):
        return tokenizer.decode(lookup(tokenizer(text, add_special_tokens=False)["input_ids"]))

    assert draft('{"function":"x^') == "2*ln(x + 1) "  # "x^" is in the request; "x" alone is first in "f(x)"
    assert draft('{"function":"x^2*l') == "n(x + 1) on "
    assert draft('{"function":"') == ""  # nothing written yet to look up
    assert draft('{"function":"x^2*ln(x + 1)","variable":"') == ""  # only the function is drafted
    assert draft('{"function":"cos') == ""  # not in the request


def _tiny_decoder(tiny_model_dir):
    """decode(request, draft) -> (tokens, passes): constrained_greedy on the tiny model."""
    import torch
    from llguidance import LLMatcher

    from derivanim.model_filler import _slots_decoder

    decoder = _slots_decoder(tiny_model_dir, None, False)
    llg_tokenizer = decoder.llg_tokenizer

    def decode(request, draft):
        with torch.no_grad():
            return constrained_greedy(decoder.model, prompt_ids(decoder.tokenizer, "slots", request),
                                      LLMatcher(llg_tokenizer, decoder.general_grammar), llg_tokenizer.vocab_size,
                                      decoder.tokenizer.eos_token_id, max_response_tokens(), decoder.prefix, draft)

    return decode


def test_drafted_tokens_change_the_passes_never_the_output(tiny_model_dir):
    decode = _tiny_decoder(tiny_model_dir)
    request = "Show me how tan(x) changes on [-1, 1]"
    reference, passes = decode(request, None)
    assert passes > 1
    # A draft that always guesses right: the whole response is checked in one pass, forced tokens included.
    assert decode(request, lambda generated: reference[len(generated):-1]) == (reference, 1)
    # Drafts that are wrong from their first token, or after a few right ones: the same output.
    rng = random.Random(0)
    wrong = [rng.randrange(1000) for _ in range(8)]
    assert decode(request, lambda generated: wrong)[0] == reference
    assert decode(request, lambda generated: reference[len(generated):len(generated) + 3] + wrong)[0] == reference


@pytest.mark.slow
def test_the_shipped_adapter_decodes_the_same_with_fast_forward():
    from derivanim.api import shipped_slots_adapter

    adapter = str(shipped_slots_adapter())
    for request_text in ("Animate the derivative of x^3*sin(x)", "Show me how tan(x) changes on [-1, 1]"):
        fill = fill_slots(request_text, adapter_dir=adapter)
        undrafted = fill_slots(request_text, adapter_dir=adapter, draft=False)
        assert fill.emitted == undrafted.emitted == _outlines_generate(request_text, adapter_dir=adapter,
                                                                       refused=fill.slots is None)
        assert undrafted.forward_passes < 0.6 * fill.tokens  # keys and punctuation ride along
        # The one function each request writes is forced by the constraint: drafts have nothing left to save.
        assert fill.forward_passes <= undrafted.forward_passes


def test_int8_weights_keep_the_output_layer_in_float_and_still_fill_valid_slots(tiny_model_dir, constraint):
    import torch

    from derivanim.model import int8_copy, load_base_model

    model, _ = load_base_model(tiny_model_dir)
    quantized = int8_copy(model)
    head = quantized.get_output_embeddings()
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
    assert type(quantized.get_decoder().layers[0].mlp.up_proj) is not torch.nn.Linear  # the others are int8
    fill = fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir, int8=True)
    _check_fill(fill, constraint)
    assert fill.model.endswith("(int8)")


def test_the_baseline_generates_free_text_and_checks_the_adapter_task(slots_run, tiny_model_dir, tmp_path):
    from derivanim.baseline import generate_scene, generate_scenes

    with pytest.raises(ModelUnavailable, match="trained for 'slots'"):
        generate_scene("Animate x^2", slots_run.out_dir, max_new_tokens=4)
    freeform = train("freeform", corpus_rows(2), [], base_model=tiny_model_dir, out_dir=tmp_path, epochs=1,
                     batch_size=2, progress=False)
    scene = generate_scene("Animate the derivative of x^2", freeform.out_dir, max_new_tokens=6)
    assert isinstance(scene.text, str) and 0 < scene.tokens <= 6 and scene.seconds > 0
    assert scene.finished == (scene.tokens < 6)
    with pytest.raises(ModelUnavailable, match="trained for 'freeform'"):
        fill_slots("Animate x^2", adapter_dir=freeform.out_dir)
    # Batched (left-padded) greedy decoding writes what one-at-a-time decoding writes.
    requests = ["Animate the derivative of x^2", "Show me the slope of sin(x) on [-3, 3] at x = 1"]
    batched = generate_scenes(requests, freeform.out_dir, max_new_tokens=6, batch_size=2)
    assert [s.text for s in batched] == [generate_scene(r, freeform.out_dir, max_new_tokens=6).text for r in requests]


def test_missing_models_and_adapters_raise_model_unavailable(tmp_path):
    from derivanim.model import load_adapter, load_base_model

    with pytest.raises(ModelUnavailable, match="no adapter folder"):
        load_adapter(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable, match="adapter_config.json is missing"):
        load_adapter(tmp_path)
    with pytest.raises(ModelUnavailable, match="cannot load the model"):
        load_base_model(str(tmp_path))


@pytest.mark.slow
def test_smollm2_fills_valid_slots_without_an_adapter(constraint):
    fill = fill_slots("Show me how the derivative of x^2*sin(x) works")
    _check_fill(fill, constraint)
    assert fill.model == "smollm2-135m"


# ----------------------------------------------------------------------------- the dequantised model's cache

@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, tiny_model_dir):
    """SmolLM2's GGUF replaced by a small file whose 'dequantisation' loads the tiny model (and counts the calls);
    the user's cache folder in tmp_path. Yields (the GGUF path, the calls)."""
    import derivanim.model as model_module

    gguf = tmp_path / "package" / "SmolLM2.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"quantised weights, version 1")
    calls = []

    def dequantise(folder, gguf_file):
        calls.append(gguf_file)
        return model_module.load_pretrained(tiny_model_dir)

    monkeypatch.setattr(model_module, "smollm2_gguf", lambda: (gguf.parent, gguf.name))
    monkeypatch.setattr(model_module, "_dequantise", dequantise)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model_module.clear_cache()
    yield gguf, calls
    model_module.clear_cache()  # no tiny model left cached under SmolLM2's name


def _cached_folders(gguf):
    return sorted(path.name for path in (gguf.parent.parent / "cache" / "derivanim" / "models").iterdir())


def test_a_second_load_reads_the_cache_and_a_changed_gguf_invalidates_it(fake_gguf):
    import torch

    from derivanim.model import clear_cache, load_base_model

    gguf, calls = fake_gguf
    first, _ = load_base_model()
    clear_cache()  # as in a new process
    second, tokenizer = load_base_model()
    assert calls == [gguf.name]  # dequantised once; the second load read the safetensors
    assert tokenizer.chat_template
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert len(_cached_folders(gguf)) == 1
    gguf.write_bytes(b"quantised weights, version 2 (another release)")
    clear_cache()
    load_base_model()
    assert calls == [gguf.name, gguf.name] and len(_cached_folders(gguf)) == 2


def test_a_half_written_cache_is_never_used(fake_gguf, monkeypatch):
    import derivanim.model as model_module
    from derivanim.model import clear_cache, load_base_model

    gguf, calls = fake_gguf
    dequantise = model_module._dequantise

    def crash_while_writing(folder, gguf_file):  # the weights are written, then the cache's disk fills up
        model, tokenizer = dequantise(folder, gguf_file)
        save = tokenizer.save_pretrained

        def disk_full(path, *args, **kwargs):
            if str(path).startswith(str(model_module.cache_folder())):
                raise OSError("No space left on device")
            return save(path, *args, **kwargs)

        tokenizer.save_pretrained = disk_full
        return model, tokenizer

    monkeypatch.setattr(model_module, "_dequantise", crash_while_writing)
    with pytest.warns(UserWarning, match="cannot cache the model"):
        assert load_base_model()[0] is not None  # this process still gets its model
    assert _cached_folders(gguf) == []  # neither the folder nor its partial copy
    monkeypatch.setattr(model_module, "_dequantise", dequantise)
    clear_cache()
    load_base_model()
    assert len(calls) == 2 and len(_cached_folders(gguf)) == 1  # dequantised again, not read from the broken copy


def test_an_adapter_merged_into_smollm2_is_cached_by_the_hashes_of_both(fake_gguf, slots_run, tmp_path, monkeypatch):
    import shutil

    import torch

    import derivanim.model as model_module

    adapter = shutil.copytree(slots_run.out_dir, tmp_path / "adapter")
    merges = []
    merge = model_module._merge
    monkeypatch.setattr(model_module, "_merge", lambda *args: merges.append(args) or merge(*args))
    first = model_module.load_adapter(adapter, base_model="smollm2-135m")[0]
    model_module.clear_cache()
    second = model_module.load_adapter(adapter, base_model="smollm2-135m")[0]
    assert len(merges) == 1  # the second process read the merged model, without PEFT
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    info = adapter / "derivanim_adapter.json"
    info.write_text(info.read_text().replace("{", '{"retrained": true, ', 1))
    model_module.clear_cache()
    model_module.load_adapter(adapter, base_model="smollm2-135m")
    assert len(merges) == 2


# ----------------------------------------------------------------------------- threads

def test_slot_filling_runs_on_one_thread_by_default_and_restores_the_setting(tiny_model_dir, monkeypatch):
    import torch

    import derivanim.model_filler as model_filler

    seen = []
    decode = model_filler.constrained_greedy

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return decode(*args, **kwargs)

    monkeypatch.setattr(model_filler, "constrained_greedy", recording)
    torch.set_num_threads(2)
    fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir)
    monkeypatch.setenv("DERIVANIM_THREADS", "2")
    fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir)
    fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir, threads=1)
    assert seen == [1, 2, 1] and torch.get_num_threads() == 2
    monkeypatch.setenv("DERIVANIM_THREADS", "many")
    with pytest.raises(InvalidInput, match="DERIVANIM_THREADS"):
        fill_slots("Teach the product rule with x*sin(x)", base_model=tiny_model_dir)


@pytest.mark.slow
def test_smollm2_from_the_cache_is_the_gguf_model(tmp_path, monkeypatch):
    import torch

    import derivanim.model as model_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model_module.clear_cache()
    try:
        cached, _ = model_module.load_pretrained()  # dequantised, written to the cache, read back from it
        assert [path.name for path in (tmp_path / "derivanim" / "models").iterdir()]
        direct, _ = model_module._dequantise(*model_module.smollm2_gguf())
        assert all(torch.equal(a, b) for a, b in zip(cached.state_dict().values(), direct.state_dict().values()))
    finally:
        model_module.clear_cache()
