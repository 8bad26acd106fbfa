"""Slots: the few values a filler (rules or model) decides. Declared once, used for validation and decoding."""

from pydantic import BaseModel, ConfigDict, Field


class Slots(BaseModel):
    """What a filler decides about one animation. Nothing else: no LaTeX, no code, no derivative."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(max_length=200, description="f in the project's expression grammar, e.g. x^3*sin(x)")
    variable: str = Field(default="x", pattern=r"^[a-df-z]$", description="the one variable of f")
    name: str = Field(default="f", pattern=r"^[a-df-z]$", description="the function's name: f, g, h, ...")
    x_min: float = Field(description="left edge of the window")
    x_max: float = Field(description="right edge of the window")
    x0: float = Field(description="where the tangent starts")


# A filler's other answer: no function to differentiate in the request. The model writes
# {"function":null,"reason":"<key>"}; the key says why, in the words after it.
REFUSALS = {
    "code": "it is code, markup or a command",
    "off-topic": "it is not about the derivative of a function",
    "not-derivative": "it asks for other mathematics than a derivative",
    "no-function": "it names no function",
}
