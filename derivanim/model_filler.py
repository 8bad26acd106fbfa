"""The model filler: a (fine-tuned) language model decides the slots of a request, under constrained decoding.

The model writes the slots response of derivanim.prompts, and llguidance (the constrained-decoding engine
behind Outlines' CFG type) masks every token that would leave the response grammar built here. So whatever the weights, the output is the
compact slots JSON with `function` inside the project's expression grammar, and it always finishes
within a known number of tokens.

Why this constraint, with Outlines 1.3.3 and llguidance 1.9.1 as installed:
- Outlines' JSON-schema path (`model(prompt, Slots)`, outlines_core backend) cannot tie `function` to a
  context-free grammar, allows any whitespace and any number of digits, and so neither matches the
  training format nor bounds the length: a weak model can run to max_new_tokens and emit broken JSON.
- Handing llguidance expression.lark itself as a CFG does not work either: llguidance's Lark dialect has
  no terminal priorities and lexes dynamically (Earley), so it would accept strings that derivanim's
  LALR parser rejects ("exp" read as e*x*p, "six" as s*i*x, "sinx"), and a CFG cannot bound the length.
- So: a CFG in llguidance's Lark dialect (what Outlines' CFG type hands to llguidance) for the whole response, in which `function` is ONE
  terminal, a regular expression derived from expression.lark: its function names come from the
  FUNCTION terminal, its structure mirrors sum/product/power/atom with parentheses nested at most
  MAX_NESTING deep, letters never touch letters (so the LALR lexer splits the text exactly as the
  constraint does), and it is intersected with a length limit (so every response ends within
  max_response_tokens(), even from a random model). Terminals refer to each other by name,
  so the grammar stays small. Every string it accepts is read by parse_function's parser (tested by
  random walks through the compiled constraint); what it does not check is meaning (one variable,
  agreeing with `variable`), which derivanim.verify checks and repairs.
The response is ASCII only: no π, −, ·, ×. A refusal ({"function":null,"reason":...}) is the grammar's other branch.
Decoding runs llguidance's matcher directly (constrained_greedy): the same tokens as Outlines' generate with its
logits processor (tests/test_model.py compares them), without Outlines' import in a cold CLI call.

Where the request writes functions ("Animation: derivative of atan(x)"), the function terminal is instead the
alternation of exactly those strings (written_functions: found with the project's Lark grammar), so the model
chooses which one and copies it exactly. Where it writes none but says one in words ("the natural log of cosine x"),
the alternation is of the readings derivanim.spoken gives (grammars/spoken.lark: 'ln(cos(x))', ...), so the model
chooses a reading instead of composing one. Only a request with neither gets the general terminal above.
"""

import contextlib
import functools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from derivanim.errors import InvalidInput, ModelUnavailable
from derivanim.prompts import format_refusal, format_slots, prompt_ids
from derivanim.slots import REFUSALS, Slots
from derivanim.spoken import says_only_a_function, spoken_functions

# Parentheses (calls and groups) nested at most this deep: "exp(sin(cos(x^2)))" fits. One level more
# (or a much longer function) makes llguidance's lazily built lexer exceed its default state budget
# on adversarial random walks, and Outlines gives no way to raise that budget.
MAX_NESTING = 3
MAX_FUNCTION_CHARS = 100
NUMBER_PATTERN = r"-?(0|[1-9][0-9]{0,4})(\.[0-9]{1,3})?"  # what prompts.format_number writes
LETTER_PATTERN = r"[a-df-z]"  # Slots' pattern of variable and name
NO_FUNCTION = "no-function"  # the refusal reason that contradicts a function the grammar found in the request


# ----------------------------------------------------------------------------- the functions a request writes

_START = re.compile(r"(?<![A-Za-z0-9.])[^\sA-Z]")  # where a function may begin: not inside a word or a number


def _parse_ends(text: str, start: int) -> list[int]:
    """Every end of a stretch of `text` from `start` that the expression grammar reads completely, shortest first."""
    from lark.exceptions import UnexpectedInput

    from derivanim.grammar import expression_parser

    interactive, ends = expression_parser().parse_interactive(text[start:]), []
    try:
        for token in interactive.lexer_thread.lex(interactive.parser_state):
            interactive.feed_token(token)
            try:
                interactive.copy().feed_eof()
                ends.append(start + token.end_pos)
            except UnexpectedInput:
                pass
    except UnexpectedInput:  # the lexer or the parser stops at the first thing it cannot read
        pass
    return ends


def _function_at(text: str, start: int) -> str | None:
    """The longest stretch of `text` from `start` that is a function of one variable: it ends at a word's end, and
    it is not only letters ('x squared' gives no 'x', 'Teach a' no 'a'), a constant ('from 0.1 to 9') nor the variable
    alone (the '(x)' of "f'(x)")."""
    from derivanim.grammar import parse_function

    for end in reversed(_parse_ends(text, start)):
        stretch = text[start:end]
        if (end < len(text) and text[end].isalnum()) or not re.search(r"[^A-Za-z\s]", stretch):
            continue
        try:
            expr = parse_function(stretch).expr
            if expr.free_symbols and not expr.is_Symbol:
                return stretch
        except InvalidInput:  # 'derivative of x^2' reads as d*e*r*...*x^2: many variables
            continue
    return None


def bare_function(text: str) -> str:
    """A function's text without spaces and '*', for comparing what two writers wrote ('x*sin(x)', 'x sin(x)')."""
    return re.sub(r"[\s*]", "", text)


@functools.lru_cache(maxsize=256)
def written_functions(request: str) -> tuple[str, ...]:
    """The functions `request` writes, in order: every maximal stretch the expression grammar reads as a function
    of one variable ('atan(x)', never the 'tan(x)' inside it), and the right side of a definition ('t^3 - 2t' of
    'g(t) = t^3 - 2t'). Only the project's Lark grammar reads the text; nothing is evaluated."""
    from derivanim.grammar import MAX_REQUEST_LENGTH

    if not isinstance(request, str) or len(request) > MAX_REQUEST_LENGTH or not request.isprintable():
        return ()
    stretches = [(match.start(), match.start() + len(found)) for match in _START.finditer(request)
                 if (found := _function_at(request, match.start())) is not None]
    functions = []
    for start, end in stretches:
        if any(a <= start and end <= b and (a, b) != (start, end) for a, b in stretches):
            continue  # inside a longer one: the x + 1 of (x + 1)^2
        stretch = request[start:end]
        functions.append(stretch)
        if "=" in stretch:  # a definition: the grammar has no other '='
            functions.append(stretch.split("=", 1)[1].strip())
    return tuple(dict.fromkeys(functions))


# ----------------------------------------------------------------------------- the constraint

@functools.cache
def function_names() -> tuple[str, ...]:
    """The function names of the FUNCTION terminal of grammars/expression.lark."""
    from derivanim.grammar import expression_parser

    return tuple(re.findall(r"[a-z][a-z0-9]*", expression_parser().get_terminal("FUNCTION").pattern.value))


def function_terminals(depth: int = MAX_NESTING) -> str:
    """Lark terminals F_E0 .. F_E<depth>: expressions of the project's grammar with parentheses nested <= k.

    After each power the lexer state is N (it ended in a digit or ')') or L (it ended in a letter).
    Juxtaposition (implicit multiplication) without a space is allowed only where the LALR lexer of
    expression.lark splits the text the same way: N before a letter or '(' ("2x", "2sin(x)", "(x+1)(x-1)",
    "sin(x)cos(x)"), L before '(' ("x(x+1)"). A space, or an operator, may separate anything.
    """
    names = " | ".join(json.dumps(name) for name in function_names())
    lines = [
        r"F_NUM: /[0-9]{1,5}(\.[0-9]{1,4})?/",
        'F_VC: /[a-df-z]/ | "e" | "pi"',  # one-letter variables and the constants
        f"F_FN: {names}",
        r'F_SEP: " "? /[-+*\/]/ " "? "-"? | " "',  # a binary operator (maybe a sign after it) or a space
        'F_POW: ("^" | "**") "-"?',
    ]
    for k in range(depth + 1):
        if k == 0:
            lines += ["F_AN0: F_NUM", "F_A0: F_NUM | F_VC"]
        else:
            inner = f'"(" F_E{k - 1} ")"'
            lines += [
                f"F_GROUP{k}: {inner}",
                f'F_CALL{k}: F_FN ("^" "-"? /[0-9]{{1,2}}/)? {inner}',  # sin(x), sin^2(x)
                f"F_AN{k}: F_NUM | F_GROUP{k} | F_CALL{k}",  # atoms ending N
                f"F_A{k}: F_AN{k} | F_VC",
            ]
        powered = f"(F_POW F_A{k})? F_POW"  # x^2, e^-x, x^2^3
        # Powers by (first character, end state): any start; letter or '(' start; '(' start.
        lines += [
            f"F_PAN{k}: F_AN{k} | F_A{k} {powered} F_AN{k}",
            f"F_PAL{k}: F_VC | F_A{k} {powered} F_VC",
        ]
        if k == 0:
            lines += [
                f"F_NN{k}: F_SEP F_PAN{k} | F_VC {powered} F_AN{k}",
                f"F_NL{k}: F_SEP F_PAL{k} | F_VC | F_VC {powered} F_VC",
                f"F_LN{k}: F_SEP F_PAN{k}",
                f"F_LL{k}: F_SEP F_PAL{k}",
            ]
        else:
            letter_or_paren = f"(F_GROUP{k} | F_CALL{k} | F_VC)"
            lines += [
                f"F_NN{k}: F_SEP F_PAN{k} | F_GROUP{k} | F_CALL{k} | {letter_or_paren} {powered} F_AN{k}",
                f"F_NL{k}: F_SEP F_PAL{k} | F_VC | {letter_or_paren} {powered} F_VC",
                f"F_LN{k}: F_SEP F_PAN{k} | F_GROUP{k} | F_GROUP{k} {powered} F_AN{k}",
                f"F_LL{k}: F_SEP F_PAL{k} | F_GROUP{k} {powered} F_VC",
            ]
        # The two-state automaton as a regular expression: from N, and from L.
        lines += [
            f"F_RN{k}: (F_NN{k} | F_NL{k} F_LL{k}* F_LN{k})* (F_NL{k} F_LL{k}*)?",
            f"F_RL{k}: F_LL{k}* (F_LN{k} F_RN{k})?",
            f'F_E{k}: "-"? (F_PAN{k} F_RN{k} | F_PAL{k} F_RL{k})',
        ]
    return "\n".join(lines)


def slots_grammar(depth: int = MAX_NESTING, max_function_chars: int = MAX_FUNCTION_CHARS,
                  functions: tuple[str, ...] = (), numbers: bool = True, answers: str = "slots | refusal") -> str:
    """The whole slots response as an llguidance Lark grammar: derivanim.prompts.format_slots' format.

    Keys in the order of Slots' fields, no whitespace, function as one terminal, numbers as format_number
    writes them, letters as Slots allows them; or a refusal, {"function":null,"reason":...} (prompts.format_refusal).
    `functions` (the request's own: written_functions, else spoken_functions): the function terminal is exactly one of
    these strings, so the model copies one; none: any expression of the grammar.
    numbers=False: the response closes after the name (function, variable and name only).
    With `functions`, a refusal may not say the request names no function: the grammar found one (the model may still
    refuse an integral of it, or code that happens to contain one). `answers`: the grammar's start rule, "slots |
    refusal" (either), "slots" or "refusal" (once decide_refusal has chosen).
    """
    if functions:
        function = " | ".join(json.dumps(text) for text in functions)
        expressions = ""
    else:
        function = f"F_E{depth} & /.{{1,{max_function_chars}}}/"
        expressions = function_terminals(depth)
    quoted = {"function": 'QUOTE FUNCTION QUOTE', "variable": "QUOTE LETTER QUOTE", "name": "QUOTE LETTER QUOTE"}
    parts = []
    for i, key in enumerate(key for key in Slots.model_fields if numbers or key in quoted):
        opening = "{" if i == 0 else ","
        parts.append(json.dumps(f'{opening}"{key}":') + " " + quoted.get(key, "NUMBER"))
    refusal = json.dumps(format_refusal("code").split('"code"')[0]) + ' QUOTE REASON QUOTE "}"'
    return "\n".join([
        "%llguidance {}",
        f"start: {answers}",
        f"slots: {' '.join(parts)} \"}}\"",
        f"refusal: {refusal}",
        f"REASON: {' | '.join(json.dumps(reason) for reason in REFUSALS if not (functions and reason == NO_FUNCTION))}",
        'QUOTE: "\\""',
        f"FUNCTION: {function}",
        f"LETTER: /{LETTER_PATTERN}/",
        f"NUMBER: /{NUMBER_PATTERN}/",
        expressions,
    ]) + "\n"


def max_response_tokens(max_function_chars: int = MAX_FUNCTION_CHARS) -> int:
    """Tokens enough for the longest response the grammar allows, plus EOS (a token is at least one byte)."""
    fixed = len(format_slots(Slots(function="", x_min=0, x_max=0, x0=0))) - 3  # without the function and numbers
    return fixed + max_function_chars + 3 * len("-12345.123") + 1


class SlotsConstraint:
    """The response grammar compiled for one tokenizer; `accepts` checks a text against it."""

    def __init__(self, tokenizer, depth: int = MAX_NESTING, max_function_chars: int = MAX_FUNCTION_CHARS,
                 functions: tuple[str, ...] = ()):
        import llguidance

        self.grammar = slots_grammar(depth, max_function_chars, functions)
        self._llguidance = llguidance
        self.llg_tokenizer = llguidance_tokenizer(tokenizer)
        self._spec = llguidance.LLMatcher.grammar_from_lark(self.grammar)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(self._spec, self.llg_tokenizer)
        if is_error:
            raise ValueError(f"the slots grammar does not compile: {messages[0]}")

    def matcher(self):
        """A fresh llguidance matcher at the start of a response."""
        return self._llguidance.LLMatcher(self.llg_tokenizer, self._spec)

    def accepts(self, text: str) -> bool:
        """Could constrained decoding produce exactly `text` (then EOS)?"""
        matcher = self.matcher()
        return (matcher.consume_tokens(self.llg_tokenizer.tokenize_str(text))
                and not matcher.is_error() and matcher.is_accepting())


# ----------------------------------------------------------------------------- generation

def slot_threads() -> int:
    """torch's threads for slot filling: $DERIVANIM_THREADS, else 1. A 135M model decoding one token at a time is
    faster on one thread than on two here, idle and even more so beside another busy process (the GUIDE's figures,
    and scripts/benchmark_model.py --threads)."""
    value = os.environ.get("DERIVANIM_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"DERIVANIM_THREADS must be a whole number >= 1, not {value!r}")
    return int(value)


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op threads set to `count` inside the block, and back to what they were after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class ModelFill:
    """What the model decided for one request: the raw text it emitted and the slots parsed from it, or its refusal
    (a key of slots.REFUSALS) when it found no function to differentiate (then slots is None)."""

    request: str
    emitted: str
    slots: Slots | None
    tokens: int  # tokens generated, the final EOS included
    forward_passes: int  # model runs: one per token the grammar left open (forced tokens ride along)
    seconds: float  # generation only, not model loading
    model: str  # the base model, and the adapter folder when there is one
    refusal: str | None = None  # why there are no slots: a key of slots.REFUSALS
    refusal_share: float | None = None  # the model's probability of refusing (refusal_share), before the threshold


@dataclass(frozen=True)
class SlotsDecoder:
    """What decoding slots needs of one model, built once per process (_slots_decoder): the model and its tokenizer,
    llguidance's view of that tokenizer, the general response grammar, and the prompts' shared prefix."""

    model: object
    tokenizer: object
    llg_tokenizer: object  # llguidance.LLTokenizer
    general_grammar: str  # slots_grammar() as llguidance's grammar spec: for requests that write no function
    description: str
    prefix: "PromptPrefix"


def llguidance_tokenizer(tokenizer):
    """llguidance's view of a tokenizer: derivanim.llama_runtime's, or a transformers fast tokenizer's."""
    if hasattr(tokenizer, "llguidance"):
        return tokenizer.llguidance()
    import llguidance.hf  # imports transformers

    return llguidance.hf.from_tokenizer(tokenizer)


def new_cache(model):
    """An empty KV cache for `model`: derivanim.llama_runtime's own, or transformers' DynamicCache."""
    if hasattr(model, "new_cache"):
        return model.new_cache()
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


@functools.cache
def _slots_decoder(base_model: str | None, adapter_dir: str | None, int8: bool, runtime: bool = True) -> SlotsDecoder:
    """The SlotsDecoder of one model. llguidance compiles the constraint directly: Outlines (whose llguidance
    backend it is) adds nothing here but ~1.5 s of imports to a cold CLI call. runtime: run the model with
    derivanim.llama_runtime where it can (load_for_task); False keeps transformers' model, for `generate`."""
    try:
        import llguidance
    except ImportError:
        raise ModelUnavailable("the model filler needs llguidance: pip install llguidance") from None
    from derivanim.model import load_for_task

    model, tokenizer, description = load_for_task("slots", base_model, adapter_dir, int8=int8, runtime=runtime)
    return SlotsDecoder(model, tokenizer, llguidance_tokenizer(tokenizer),
                        llguidance.LLMatcher.grammar_from_lark(slots_grammar()), description,
                        PromptPrefix.of(model, tokenizer))


@dataclass(frozen=True)
class PromptPrefix:
    """The token ids every slots prompt starts with (system message, chat markup) and their KV cache.

    Computed once per model, so a request costs a forward pass over its own tokens only.
    """

    ids: tuple[int, ...]
    cache: object  # new_cache(model)'s kind; copied for each request, never extended

    @classmethod
    def of(cls, model, tokenizer) -> "PromptPrefix":
        import torch

        first, second = prompt_ids(tokenizer, "slots", "a b"), prompt_ids(tokenizer, "slots", "9 (")
        length = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
        cache = new_cache(model)
        if length:
            with torch.no_grad():
                model(input_ids=torch.tensor([first[:length]], device=model.device), cache=cache, use_cache=True,
                      logits_to_keep=1)
        return cls(tuple(first[:length]), cache)

    def start(self, prompt: list[int], model):
        """(a KV cache, the prompt's tokens still to run): the prefix's copy when the prompt begins with it."""
        import copy

        if self.ids and tuple(prompt[:len(self.ids)]) == self.ids and len(prompt) > len(self.ids):
            return copy.deepcopy(self.cache), list(prompt[len(self.ids):])
        return new_cache(model), list(prompt)


def allowed_tokens(matcher, vocab_size: int):
    """The token ids an llguidance matcher allows next, ascending (its bitmask: bit i = token i)."""
    import numpy as np
    import torch

    bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")[:vocab_size]
    return torch.from_numpy(bits.nonzero()[0])


class RequestLookup:
    """Draft tokens for the function: what the request itself writes after the function text so far.

    A request usually contains its function verbatim ("... of: f(x) = x^2*ln(x + 1)"), and the model copies
    it. Once the model has written some of the function, the longest end of that text found in the request
    (its first occurrence) says what probably comes next; constrained_greedy checks those draft tokens in one
    forward pass and keeps the ones the model would have chosen itself (prompt-lookup speculative decoding).
    Outside the function, or with no match, there is no draft.
    """

    OPENING = '{"' + next(iter(Slots.model_fields)) + '":"'  # the response begins with the function

    def __init__(self, tokenizer, request: str, max_chars: int = 24):
        self.tokenizer, self.request, self.max_chars = tokenizer, request, max_chars

    def __call__(self, generated: list[int]) -> list[int]:
        text = self.tokenizer.decode(generated)
        written = text[len(self.OPENING):]
        if not text.startswith(self.OPENING) or not written or '"' in written:
            return []
        for start in range(len(written)):  # the longest end of the function text first
            at = self.request.find(written[start:])
            if at >= 0:
                following = self.request[at + len(written) - start:][:self.max_chars]
                return self.tokenizer.encode(following, add_special_tokens=False) if following else []
        return []


def constrained_greedy(model, prompt: list[int], matcher, vocab_size: int, eos_token_id: int,
                       max_new_tokens: int, prefix: PromptPrefix, draft=None) -> tuple[list[int], int]:
    """Greedy decoding under an llguidance matcher, running the model only where it has a choice.

    Outlines' own loop (transformers' generate with its logits processor) runs one forward pass per
    token, also for the tokens the grammar forces: most of a slots response (its keys and punctuation).
    Here:
    - Forced tokens (`compute_ff_tokens`) are appended without asking the model; the next forward pass
      reads them together with the token before them (the KV cache makes that one pass).
    - `draft` (e.g. RequestLookup), given the tokens so far, may propose the next ones. They ride along in
      the same pass; the hidden state after each one that equals the model's own greedy choice gives the
      next choice, so an accepted draft of n tokens saves n passes. At the first difference the model's
      token is kept, and the cache entries after it are dropped.
    - The output layer scores only the tokens the grammar allows (a few dozen, at most a few hundred, of
      ~49,000): the whole output matrix is a fifth of the weights a pass reads. Greedy decoding needs
      only which allowed token scores highest; a model's final transformations of its logits (scaling,
      soft-capping) are monotonic and do not change that.
    So the tokens are those that plain greedy decoding under the same mask (one pass per token) writes.
    When the grammar is complete the matcher stops and EOS, the only token left, is appended.
    `prefix` (PromptPrefix.of the same model, or refusal_share's), when the prompt and the response's forced
    opening begin with it, spares the pass over those tokens.
    Returns (generated token ids, forward passes run).
    """
    import torch

    decoder, head = model.get_decoder(), model.get_output_embeddings()

    def best_allowed(hidden) -> int:
        allowed = allowed_tokens(matcher, vocab_size).to(hidden.device)
        scores = head.weight[allowed] @ hidden
        if head.bias is not None:
            scores += head.bias[allowed]
        return int(allowed[int(scores.argmax())])

    def advance(tokens: list[int]) -> list[int]:
        """Consume `tokens` and then the tokens the grammar forces (within max_new_tokens); all of them."""
        if not matcher.consume_tokens(tokens):
            raise RuntimeError(f"the constraint rejected its own token: {matcher.get_error()}")
        forced = [] if matcher.is_stopped() else matcher.compute_ff_tokens()
        forced = forced[:max_new_tokens - len(generated) - len(tokens)]
        if forced and not matcher.consume_tokens(forced):
            raise RuntimeError(f"the constraint rejected its forced tokens: {matcher.get_error()}")
        return tokens + forced

    generated, passes = [], 0
    chosen = advance([])  # the response's opening
    generated += chosen
    cache, pending = prefix.start(prompt + chosen, model)
    while not matcher.is_stopped() and len(generated) < max_new_tokens:
        run = pending + (draft(generated)[:max_new_tokens - len(generated)] if draft else [])
        hidden = decoder(input_ids=torch.tensor([run], device=model.device), cache=cache,
                         use_cache=True).last_hidden_state[0]
        passes += 1
        position = len(pending) - 1  # the last token of `run` known to be the model's own
        while True:
            chosen = advance([best_allowed(hidden[position])])
            generated += chosen
            if (matcher.is_stopped() or len(generated) >= max_new_tokens
                    or run[position + 1:position + 1 + len(chosen)] != chosen):
                break
            position += len(chosen)  # the draft had these tokens: their hidden states are the model's
        cache.crop(position + 1 - len(run))  # drop the draft after the last token kept (a count < 0)
        pending = chosen
    if matcher.is_stopped() and len(generated) < max_new_tokens:
        generated.append(eos_token_id)
    return generated, passes


CALIBRATION = "refusal_calibration.json"  # beside an adapter: its refusal threshold (scripts/calibrate_refusal.py)
DEFAULT_REFUSAL_THRESHOLD = 0.5  # without a calibration: refuse when the model finds refusing more likely


def refusal_threshold(adapter: str | None, found_function: bool) -> float:
    """The adapter's calibrated threshold on refusal_share (its CALIBRATION file), one for requests where the grammar
    found a function and one for requests where it found none; else DEFAULT_REFUSAL_THRESHOLD."""
    file = None if adapter is None else Path(adapter) / CALIBRATION
    if file is None or not file.is_file():
        return DEFAULT_REFUSAL_THRESHOLD
    calibration = json.loads(file.read_text(encoding="utf-8"))
    return float(calibration["threshold_with_function" if found_function else "threshold_without_function"])


# Words that only ask for the video, at either end of a request ('e to the x squared please', 'derivanim: x^4')
_FRAMING = re.compile(r"^(?:(?:please|animate|show|me|how|derivanim|video)\b[\s:,]*)+|"
                      r"(?:[\s,]*\b(?:please|thanks|changes))+$", re.IGNORECASE)
# Words that ask for a derivative ('slope of', 'differentiate', 'quotient rule', "f'(x)"); not 'antiderivative'
_ASKS_FOR_A_DERIVATIVE = re.compile(r"\b(?:derivatives?|differentiat\w*|slopes?|tangents?|rates? of change|"
                                    r"d/d[a-z]|(?:chain|product|quotient|power) rule)\b|\b[a-z]'\(", re.IGNORECASE)


def only_a_function(request: str) -> bool:
    """Whether the request is nothing but one function, written or said ('x^4', 'g(t) = t^3 - 2t', 'one minus 4 x'),
    with at most words that ask for the video at either end ('e to the x squared please', 'Animate two x plus
    three'): such a request cannot lack a function to differentiate, so fill_slots never refuses it."""
    text = _FRAMING.sub("", request.strip().rstrip(".!?").strip()).strip()
    return bool(text) and (text in written_functions(text) or says_only_a_function(text))


def refusable(request: str, functions: tuple[str, ...]) -> bool:
    """Whether fill_slots may refuse `request` (whose functions the constraint offers are `functions`): not if it is
    only a function, nor if it writes one and asks for its derivative in words."""
    return not only_a_function(request) and not (functions and asks_for_a_derivative(request))


def asks_for_a_derivative(request: str) -> bool:
    """Whether the request says it wants a derivative ('the slope of', 'differentiate', 'rate of change', 'quotient
    rule example'): with a function in it, it is not a request for other mathematics, so fill_slots does not refuse
    it as one."""
    return bool(_ASKS_FOR_A_DERIVATIVE.search(request))


def request_functions(request: str) -> tuple[str, ...]:
    """The functions the constraint offers for `request`: those it writes and those it says in words, maximal across
    both readers: a written stretch inside a spoken reading ('2 x' of 'minus four x squared minus 2 x plus 5') is
    only part of that function."""
    spoken = spoken_functions(request)
    written = [text for text in written_functions(request)
               if not any(bare_function(text) in bare_function(reading) for reading in spoken)]
    return tuple(dict.fromkeys([*written, *spoken]))


def refusal_share(decoder: "SlotsDecoder", prompt: list[int]) -> tuple[float, PromptPrefix]:
    """How much of the model's probability goes to a refusal ('{"function":null') rather than a function
    ('{"function":"'), each opening tokenized as in training; the tokens both share run once, then each branch's own.
    Also returns the prompt and those shared tokens with their KV cache, for decoding to go on from.

    Greedy decoding takes whichever single token scores highest where the answer branches, so a weak model's
    refusals swing with small changes of training (one epoch refused nothing, the next refused written functions);
    the share, compared with a threshold calibrated on validation requests, is a decision that can be tuned and
    measured."""
    import copy

    import torch

    model, tokenizer = decoder.model, decoder.tokenizer
    refusal = tokenizer.encode(format_refusal("code").split(',"reason"')[0], add_special_tokens=False)
    slots = tokenizer.encode(RequestLookup.OPENING, add_special_tokens=False)
    shared = next(i for i, (a, b) in enumerate(zip(refusal, slots)) if a != b)
    cache, pending = decoder.prefix.start(prompt + refusal[:shared], model)
    logits = model(input_ids=torch.tensor([pending], device=model.device), cache=cache, use_cache=True,
                   logits_to_keep=1).logits[0, -1]

    def log_probability(branch: list[int]) -> float:
        total = float(torch.log_softmax(logits.float(), dim=0)[branch[0]])
        if len(branch) > 1:
            rest = model(input_ids=torch.tensor([branch[:-1]], device=model.device),
                         cache=copy.deepcopy(cache), use_cache=True).logits[0]
            steps = torch.log_softmax(rest.float(), dim=-1)
            total += float(sum(steps[i, token] for i, token in enumerate(branch[1:])))
        return total

    refusing, filling = log_probability(refusal[shared:]), log_probability(slots[shared:])
    return float(torch.sigmoid(torch.tensor(refusing - filling))), PromptPrefix(tuple(prompt + refusal[:shared]), cache)


def fill_slots(request: str, adapter_dir: str | Path | None = None, base_model: str | None = None,
               max_new_tokens: int | None = None, int8: bool = False, draft: bool = True,
               threads: int | None = None, numbers: Callable[[str], tuple[float, float, float]] | None = None
               ) -> ModelFill:
    """Ask the model for the slots of `request` under constrained, greedy decoding.

    adapter_dir: a slots adapter from derivanim.train (on the base model it records); None uses
    `base_model` alone (default: SmolLM2-135M-Instruct). The emitted JSON always has the Slots shape and a
    function the grammar can read; its meaning is checked later by derivanim.verify. int8: on a CPU, run
    the model with int8 weights (faster per token, but some greedy choices change: scripts/benchmark_model.py
    measures both). draft: check tokens copied from the request (RequestLookup) in one pass instead of one
    pass each; the output is the same either way, only the number of model passes differs.
    Where the request writes functions (written_functions), the model chooses one of them, copied exactly.
    threads: torch's threads while loading and generating (default: slot_threads()); the process's setting is
    restored after. numbers: given the model's function, (x_min, x_max, x0) chosen elsewhere (the rules filler's
    teaching choice); the model then writes function, variable and name only, and stops.
    The model may instead refuse (no function to differentiate in the request): then the result's `refusal` says why
    and its slots are None.
    Raises ModelUnavailable when the model or its packages are missing, InvalidInput when the output is
    not valid slots (possible only when max_new_tokens is set below max_response_tokens()).
    """
    if not request or not request.strip():
        raise InvalidInput("the request is empty")
    adapter = None if adapter_dir is None else str(Path(adapter_dir).expanduser().resolve())
    with torch_threads(threads or slot_threads()):  # loading too: merging the adapter took 6.4 s on 2, 0.3 s on 1
        return _fill(request, adapter, base_model, max_new_tokens, int8, draft, numbers)


def _fill(request: str, adapter: str | None, base_model: str | None, max_new_tokens: int | None, int8: bool,
          draft: bool, numbers: Callable[[str], tuple[float, float, float]] | None) -> ModelFill:
    import torch
    from llguidance import LLMatcher

    decoder = _slots_decoder(base_model, adapter, int8)
    model, tokenizer = decoder.model, decoder.tokenizer
    # Decoding starts from the prompt's token ids exactly as in training, and the count of generated tokens is exact.
    ids = prompt_ids(tokenizer, "slots", request)
    functions = request_functions(request)

    def grammar(answers: str):  # the general one is built once; any other compiles lazily, in under a millisecond
        if not functions and numbers is None and answers == "slots | refusal":
            return decoder.general_grammar
        return LLMatcher.grammar_from_lark(slots_grammar(functions=functions, numbers=numbers is None, answers=answers))

    longest = max([MAX_FUNCTION_CHARS, *map(len, functions)])
    started = time.perf_counter()
    with torch.no_grad():
        share, opened = refusal_share(decoder, ids)
        refuses = share > refusal_threshold(adapter, bool(functions)) and refusable(request, functions)
        answers = "refusal" if refuses else "slots"
        generated, passes = constrained_greedy(
            model, ids, LLMatcher(decoder.llg_tokenizer, grammar(answers)), decoder.llg_tokenizer.vocab_size,
            tokenizer.eos_token_id, max_new_tokens or max_response_tokens(longest), opened,
            RequestLookup(tokenizer, request) if draft else None)
    seconds = time.perf_counter() - started
    return read_response(request, tokenizer.decode(generated, skip_special_tokens=True), numbers,
                         tokens=len(generated), forward_passes=passes + 1, seconds=seconds,
                         model=decoder.description, refusal_share=share)


def read_response(request: str, emitted: str, numbers: Callable[[str], tuple[float, float, float]] | None = None,
                  **measures) -> ModelFill:
    """The ModelFill of a slots response: its refusal, or its slots, with `numbers`' window and x0 in place of any it
    writes. `measures`: ModelFill's tokens, forward_passes, seconds, model (and refusal_share).
    Raises InvalidInput when the response is not valid slots (constrained decoding rules that out; plain decoding,
    greedy_unconstrained, does not)."""
    try:
        chosen = json.loads(emitted)
        if not isinstance(chosen, dict):
            raise ValueError("not a JSON object")
        if chosen.get("function") is None:
            if chosen.get("reason") not in REFUSALS:
                raise ValueError(f"a refusal's reason is one of {', '.join(REFUSALS)}")
            return ModelFill(request=request, emitted=emitted, slots=None, refusal=chosen["reason"], **measures)
        if numbers is not None:
            if not isinstance(chosen["function"], str):
                raise ValueError("the function is not a string")
            chosen = {**chosen, **dict(zip(("x_min", "x_max", "x0"), numbers(chosen["function"])))}
        slots = Slots.model_validate(chosen)
    except ValidationError as error:
        raise InvalidInput(f"the model's output is not valid slots ({error.errors()[0]['msg']}): {emitted[:200]!r}") from None
    except ValueError as error:  # json.JSONDecodeError too
        raise InvalidInput(f"the model's output is not valid slots ({error}): {emitted[:200]!r}") from None
    return ModelFill(request=request, emitted=emitted, slots=slots, **measures)


UNCONSTRAINED_MAX_NEW_TOKENS = 64  # twice a typical slots response (~30 tokens)


def greedy_unconstrained(request: str, adapter_dir: str | Path | None, base_model: str | None = None,
                         max_new_tokens: int = UNCONSTRAINED_MAX_NEW_TOKENS) -> tuple[str, int, float, str]:
    """Plain greedy decoding of the slots response, no grammar: what constrained decoding is measured against
    (`derivanim eval --systems template-unconstrained`). The same model and prompt as fill_slots; read the text with
    read_response. Returns (emitted text, tokens generated, seconds, model)."""
    import torch

    adapter = None if adapter_dir is None else str(Path(adapter_dir).expanduser().resolve())
    with torch_threads(slot_threads()):
        decoder = _slots_decoder(base_model, adapter, False, runtime=False)
        model, tokenizer = decoder.model, decoder.tokenizer
        ids = prompt_ids(tokenizer, "slots", request)
        started = time.perf_counter()
        with torch.no_grad():
            output = model.generate(torch.tensor([ids], device=model.device), attention_mask=torch.ones(1, len(ids),
                                    dtype=torch.long, device=model.device), max_new_tokens=max_new_tokens,
                                    do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        seconds = time.perf_counter() - started
    generated = output[0, len(ids):].tolist()
    return tokenizer.decode(generated, skip_special_tokens=True), len(generated), seconds, decoder.description
