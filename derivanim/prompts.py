"""The one prompt format of derivanim's model, shared by training and inference.

A prompt is the tokenizer's own chat template applied to two messages: a short system message that
names the task, and the user's request. The response is what the model must emit after the template's
generation prompt, followed by the tokenizer's EOS token:

- task "slots": the slots as compact JSON, keys in the order of `Slots`, numbers rounded to 3 decimals,
  e.g. {"function":"x^2*sin(x)","variable":"x","name":"f","x_min":-3,"x_max":3,"x0":1}; or, for a request with
  no function to differentiate, a refusal: {"function":null,"reason":"code"} (reasons: slots.REFUSALS).
- task "freeform": the complete Manim scene, as the corpus row's `code`.

Training (derivanim.train) and inference (derivanim.model_filler, derivanim.baseline) both call
`prompt_ids`, so the model never sees one format while learning and another while answering.
"""

import json
from typing import Literal

from derivanim.slots import REFUSALS, Slots

Task = Literal["slots", "freeform"]
TASKS: tuple[Task, ...] = ("slots", "freeform")

SYSTEM = {
    "slots": (
        "You turn a request about the derivative of a function into the JSON slots of an animation: "
        "function (in plain math syntax such as 3x^2+sin(x)), variable, name, x_min, x_max, x0. "
        "If the request has no function to differentiate, answer with function null and a reason. "
        "Answer with the JSON object only."
    ),
    "freeform": (
        "You write the complete Python source of a Manim Community scene named DerivativeVisualization "
        "that explains the derivative of the requested function. Answer with the code only."
    ),
}

# Used only when a tokenizer has no chat template of its own (base models such as
# deepseek-coder-1.3b-base). Plain "### Role:" blocks, BOS first when the tokenizer has one; the
# assistant's turn is closed by the EOS token that training appends to every response.
FALLBACK_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "### {{ message['role'] | capitalize }}:\n{{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)

NUMBER_DECIMALS = 3


def ensure_chat_template(tokenizer) -> None:
    """Give `tokenizer` the fallback template when it has none (the tokenizer is changed in place)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE


def check_task(task: str) -> Task:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return task  # type: ignore[return-value]


def messages(task: Task, request: str) -> list[dict[str, str]]:
    """The chat messages of one prompt: the task's system message, then the request."""
    return [{"role": "system", "content": SYSTEM[check_task(task)]}, {"role": "user", "content": request.strip()}]


def prompt_text(tokenizer, task: Task, request: str) -> str:
    """The prompt as text: the chat template with the generation prompt (the assistant's turn) opened."""
    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages(task, request), tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer, task: Task, request: str) -> list[int]:
    """The prompt's token ids. No special tokens are added: the template already writes any BOS it wants."""
    return tokenizer(prompt_text(tokenizer, task, request), add_special_tokens=False)["input_ids"]


def format_number(value: float) -> str:
    """A slot number as JSON: rounded to 3 decimals, no trailing zeros, no '-0' ('3', '-1.5', '0.333')."""
    text = f"{round(float(value), NUMBER_DECIMALS):.{NUMBER_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_slots(slots: Slots | dict) -> str:
    """The slots response: compact JSON, keys in the order of Slots' fields, numbers via format_number."""
    slots = slots if isinstance(slots, Slots) else Slots.model_validate(slots)
    parts = []
    for key, info in Slots.model_fields.items():
        value = getattr(slots, key)
        if info.annotation is float:
            parts.append(f'"{key}":{format_number(value)}')
        else:
            parts.append(f'"{key}":{json.dumps(value, ensure_ascii=False)}')
    return "{" + ",".join(parts) + "}"


def format_refusal(reason: str) -> str:
    """The slots response that says the request has no function to differentiate."""
    if reason not in REFUSALS:
        raise ValueError(f"a refusal's reason is one of {', '.join(REFUSALS)}, not {reason!r}")
    return '{"function":null,"reason":' + json.dumps(reason) + "}"


def response_text(task: Task, row: dict) -> str:
    """What the model must emit for a corpus row (without the EOS token, which training appends); a slots row
    without slots is a refusal, its reason in row["refusal"]."""
    if check_task(task) == "slots":
        return format_slots(row["slots"]) if row.get("slots") is not None else format_refusal(row["refusal"])
    return row["code"]
