"""Slot filling's model without transformers: a Llama-architecture decoder in plain torch, its tokenizer through
`tokenizers` and its chat template through Jinja2, read from a from_pretrained folder (config.json,
model.safetensors, tokenizer.json).

Why: a cold `derivanim make "<words>" --no-render` spent 6.2 s, of which transformers took about 3: importing its
modeling code (which imports torch._dynamo and scipy.optimize) 1.1 s, building its tokenizer 1.0 s, from_pretrained
0.6 s; the model itself is 30 small layers. Here the same model loads in a few hundredths of a second after torch.

Only what the slots filler (derivanim.model_filler) calls, under the names transformers gives them, so the filler
runs either model: `model(input_ids=..., cache=..., logits_to_keep=...).logits`,
`model.get_decoder()(input_ids=..., cache=...).last_hidden_state`, `model.get_output_embeddings()` (an nn.Linear),
`model.new_cache()`, and a cache with `crop` that deepcopy copies. Training, evaluation's unconstrained baseline and
any model that is not a plain Llama (rope scaling, biases, another activation) keep transformers (`supports`).

The numbers are transformers' LlamaForCausalLM's with its default SDPA attention, to float rounding:
tests/test_llama_runtime.py compares logits on the tiny Llama and the filler's answers with the shipped adapter.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional

WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class LlamaShape:
    """The sizes in a Llama's config.json that the decoder needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool

    @classmethod
    def read(cls, config: dict) -> "LlamaShape":
        rope = config.get("rope_parameters") or {}
        heads = config["num_attention_heads"]
        return cls(config["vocab_size"], config["hidden_size"], config["intermediate_size"],
                   config["num_hidden_layers"], heads, config.get("num_key_value_heads") or heads,
                   config.get("head_dim") or config["hidden_size"] // heads, config["rms_norm_eps"],
                   float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
                   bool(config.get("tie_word_embeddings", False)))


def supports(folder: str | Path) -> bool:
    """Whether the folder holds a model this decoder computes exactly as transformers does: a plain Llama (no rope
    scaling, no biases, SiLU, one weights file) with a fast tokenizer's tokenizer.json."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rope = config.get("rope_parameters") or {}
    return (config.get("model_type") == "llama" and (folder / WEIGHTS).is_file() and (folder / TOKENIZER).is_file()
            and rope.get("rope_type", "default") == "default" and not config.get("rope_scaling")
            and not config.get("attention_bias") and not config.get("mlp_bias")
            and config.get("hidden_act", "silu") == "silu" and config.get("pretraining_tp", 1) == 1)


class KVCache:
    """Each layer's keys and values so far ([1, key-value heads, tokens, head size])."""

    def __init__(self, layers: int):
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers

    def get_seq_length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[layer] is not None:
            keys, values = torch.cat([self.keys[layer], keys], dim=2), torch.cat([self.values[layer], values], dim=2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last -tokens_to_remove tokens (a count <= 0, as transformers' DynamicCache.crop takes it)."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes the number of tokens to remove as a negative count")
        if tokens_to_remove == 0 or self.keys[0] is None:
            return
        end = self.get_seq_length() + tokens_to_remove
        self.keys = [keys[:, :, :end] for keys in self.keys]
        self.values = [values[:, :, :end] for values in self.values]


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.empty(size)), eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hidden.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, shape: LlamaShape, layer: int):
        super().__init__()
        self.layer, self.heads, self.kv_heads, self.head_dim = (
            layer, shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim)
        self.q_proj = nn.Linear(shape.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(shape.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(shape.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, shape.hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None,
                mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, _ = hidden.shape
        query = self.q_proj(hidden).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        keys = self.k_proj(hidden).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        values = self.v_proj(hidden).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        query, keys = query * cos + _rotate_half(query) * sin, keys * cos + _rotate_half(keys) * sin
        if cache is not None:
            keys, values = cache.update(self.layer, keys, values)
        groups = self.heads // self.kv_heads
        if groups > 1:
            keys, values = keys.repeat_interleave(groups, dim=1), values.repeat_interleave(groups, dim=1)
        output = functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask,
                                                         is_causal=mask is None and length > 1,
                                                         scale=self.head_dim ** -0.5)
        return self.o_proj(output.transpose(1, 2).reshape(batch, length, -1))


class MLP(nn.Module):
    def __init__(self, shape: LlamaShape):
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.up_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.down_proj = nn.Linear(shape.intermediate_size, shape.hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down_proj(functional.silu(self.gate_proj(hidden)) * self.up_proj(hidden))


class DecoderLayer(nn.Module):
    def __init__(self, shape: LlamaShape, layer: int):
        super().__init__()
        self.self_attn, self.mlp = Attention(shape, layer), MLP(shape)
        self.input_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)

    def forward(self, hidden, cos, sin, cache, mask):
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), cos, sin, cache, mask)
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class LlamaDecoder(nn.Module):
    """The embeddings, the layers and the final norm: hidden states, as transformers' LlamaModel returns them."""

    def __init__(self, shape: LlamaShape):
        super().__init__()
        # Given a weight, the embedding skips its random initialisation, whose meta-device path imports torch._dynamo.
        self.embed_tokens = nn.Embedding(shape.vocab_size, shape.hidden_size,
                                         _weight=torch.empty(shape.vocab_size, shape.hidden_size))
        self.layers = nn.ModuleList(DecoderLayer(shape, layer) for layer in range(shape.num_hidden_layers))
        self.norm = RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        # On the CPU even while the model is built on the meta device (load), where arange imports torch._dynamo.
        self.register_buffer("inv_freq", 1.0 / (shape.rope_theta ** (
            torch.arange(0, shape.head_dim, 2, dtype=torch.float, device="cpu") / shape.head_dim)), persistent=False)

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, use_cache: bool = True):
        length = input_ids.shape[1]
        past = cache.get_seq_length() if cache is not None and use_cache else 0
        positions = torch.arange(past, past + length, dtype=torch.float, device=input_ids.device)
        frequencies = positions[:, None] * self.inv_freq[None, :]
        angles = torch.cat((frequencies, frequencies), dim=-1)
        hidden = self.embed_tokens(input_ids)
        cos, sin = angles.cos().to(hidden.dtype)[None, None], angles.sin().to(hidden.dtype)[None, None]
        # Several new tokens after a cache: each sees the cache and the new tokens up to itself (SDPA's own causal
        # flag aligns the square at the top left, which is right only without a cache).
        mask = None
        if past and length > 1:
            mask = torch.ones(length, past + length, dtype=torch.bool, device=input_ids.device).tril(past)
        for layer in self.layers:
            hidden = layer(hidden, cos, sin, cache if use_cache else None, mask)
        return SimpleNamespace(last_hidden_state=self.norm(hidden))


class LlamaForCausalLM(nn.Module):
    def __init__(self, shape: LlamaShape, config: dict):
        super().__init__()
        self.shape, self.config = shape, SimpleNamespace(**config)
        self.model = LlamaDecoder(shape)
        self.lm_head = nn.Linear(shape.hidden_size, shape.vocab_size, bias=False)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def get_decoder(self) -> LlamaDecoder:
        return self.model

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def new_cache(self) -> KVCache:
        return KVCache(self.shape.num_hidden_layers)

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, use_cache: bool = True,
                logits_to_keep: int = 0):
        hidden = self.model(input_ids, cache, use_cache).last_hidden_state
        return SimpleNamespace(logits=self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden))


class ChatTokenizer:
    """A fast tokenizer's tokenizer.json through `tokenizers`, with the folder's chat template and special tokens:
    what derivanim.prompts and the filler call of a transformers tokenizer."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.backend = Tokenizer.from_file(str(folder / TOKENIZER))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        template_file = folder / "chat_template.jinja"
        self.chat_template = (template_file.read_text(encoding="utf-8") if template_file.is_file()
                              else config.get("chat_template"))
        self.special_tokens = {key: config[key] for key in ("bos_token", "eos_token", "pad_token", "unk_token")
                               if isinstance(config.get(key), str)}
        self.eos_token_id = self.backend.token_to_id(self.special_tokens.get("eos_token", ""))
        self._template = None

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        """The template rendered as transformers renders it (a sandboxed Jinja2 with trimmed blocks); text only."""
        if tokenize:
            raise ValueError("ChatTokenizer.apply_chat_template returns text; encode it")
        if self._template is None:
            from jinja2.ext import loopcontrols
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
            self._template = environment.from_string(self.chat_template)
        return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     **self.special_tokens)

    def llguidance(self):
        """llguidance's view of this tokenizer (what llguidance.hf.from_tokenizer builds from a transformers one)."""
        import llguidance

        backend = copy.copy(self.backend)
        backend.no_padding()
        backend.no_truncation()
        return llguidance.LLTokenizer(backend.to_str(), eos_token=self.eos_token_id)


def load(folder: str | Path, dtype: torch.dtype = torch.float32) -> tuple[LlamaForCausalLM, ChatTokenizer]:
    """(model, tokenizer) from a folder that `supports` accepts; the weights are read, not copied, into place."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    shape = LlamaShape.read(config)
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        model = LlamaForCausalLM(shape, config)
    weights = load_file(str(folder / WEIGHTS))
    if shape.tie_word_embeddings:  # stored once, under either name
        shared = weights.get("model.embed_tokens.weight", weights.get("lm_head.weight"))
        weights["model.embed_tokens.weight"] = weights["lm_head.weight"] = shared
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in weights.items()}, strict=True, assign=True)
    model.eval().requires_grad_(False)  # inference only: no autograd graph in the cache, which is deep-copied
    return model, ChatTokenizer(folder)
