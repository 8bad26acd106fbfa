"""The expression grammar (grammars/expression.lark) turned into SymPy objects.

This is the only parser of user text in derivanim. The tree is walked by a Lark Transformer that calls
SymPy constructors directly, so nothing the user types is ever evaluated as Python (no eval, no
sympify of strings). Limits on length, depth and number size keep SymPy's work bounded.
"""

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import sympy
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from derivanim.errors import InvalidInput
from derivanim.resources import resource_path

MAX_LENGTH = 200  # characters of input
MAX_DEPTH = 12  # nesting of parentheses, calls and powers
MAX_DIGITS = 10  # digits in one number literal
MAX_EXPONENT = 100  # |n| in x^n, and in any constant power after SymPy combines powers
MAX_NODES = 80  # operations in the finished expression

FUNCTIONS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan,
    "sec": sympy.sec, "csc": sympy.csc, "cot": sympy.cot,
    "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
    "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
    "asinh": sympy.asinh, "acosh": sympy.acosh, "atanh": sympy.atanh,
    "arcsinh": sympy.asinh, "arccosh": sympy.acosh, "arctanh": sympy.atanh,
    "exp": sympy.exp, "ln": sympy.log, "log": sympy.log,
    "log10": lambda u: sympy.log(u, 10), "log2": lambda u: sympy.log(u, 2),
    "sqrt": sympy.sqrt, "abs": sympy.Abs,
}
GROWING = {"exp", "sinh", "cosh"}  # e^n by another name: a number inside obeys the exponent limit
SUPPORTED_FUNCTIONS = ", ".join(sorted(set(FUNCTIONS) - {"arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh"}))


@dataclass(frozen=True)
class ParsedFunction:
    """A function of one real variable, as SymPy sees it."""

    expr: sympy.Expr
    variable: sympy.Symbol
    name: str


@cache
def _parser() -> Lark:
    return Lark(resource_path("grammars", "expression.lark").read_text(), parser="lalr", propagate_positions=True)


def symbol(letter: str) -> sympy.Symbol:
    """The SymPy symbol derivanim uses for a variable: real, so that simplification knows x is a real number."""
    return sympy.Symbol(letter, real=True)


def _size(number: sympy.Expr) -> float:
    """|number| as a float, for the limits; complex numbers too, and what SymPy cannot evaluate counts as huge."""
    try:
        return abs(complex(number))
    except (TypeError, ValueError, OverflowError):
        return math.inf


def _check_power(base: sympy.Expr, exponent: sympy.Expr) -> None:
    if exponent.is_number and _size(exponent) > MAX_EXPONENT:
        raise InvalidInput(f"exponent {exponent} is too large (derivanim allows |n| <= {MAX_EXPONENT})")
    if base.is_number and exponent.is_number and _size(exponent) * _size(sympy.log(abs(base) + 1, 10)) > 300:
        raise InvalidInput(f"the number {base}^{exponent} is too large")


@v_args(inline=True)
class _ToSympy(Transformer):
    """Builds SymPy objects from the parse tree; variables become one placeholder letter each."""

    def number(self, token: Token) -> sympy.Expr:
        digits = token.replace(".", "")
        if len(digits.lstrip("0")) > MAX_DIGITS:
            raise InvalidInput(f"the number {token} at column {token.column} has more than {MAX_DIGITS} digits")
        return sympy.Rational(Fraction(str(token)))

    def variable(self, token: Token) -> sympy.Expr:
        return symbol(str(token))

    def constant(self, token: Token) -> sympy.Expr:
        return sympy.E if token == "e" else sympy.pi

    def call(self, name: Token, argument: sympy.Expr) -> sympy.Expr:
        # exp(exp(exp(9))) is a power tower too; unchecked, SymPy's evalf of it never finishes.
        if str(name) in GROWING and argument.is_number and _size(argument) > MAX_EXPONENT:
            raise InvalidInput(f"{name}({argument}) at column {name.column} is too large "
                               f"(derivanim allows |n| <= {MAX_EXPONENT} in {name}(n))")
        return FUNCTIONS[str(name)](argument)

    def call_power(self, name: Token, _pow: Token, exponent: sympy.Expr, argument: sympy.Expr) -> sympy.Expr:
        return self.pow(self.call(name, argument), _pow, exponent)

    def signed_number(self, *tokens: Token) -> sympy.Expr:
        value = self.number(tokens[-1])
        return -value if len(tokens) == 2 else value

    def group(self, inner: sympy.Expr) -> sympy.Expr:
        return inner

    def add(self, a, _op, b):
        return a + b

    def sub(self, a, _op, b):
        return a - b

    def mul(self, a, _op, b):
        return a * b

    def implicit_mul(self, a, b):
        return a * b

    def div(self, a, op, b):
        if b == 0:
            raise InvalidInput(f"division by zero at column {op.column}")
        return a / b

    def neg(self, _op, a):
        return -a

    def pos(self, _op, a):
        return a

    def pow(self, base, _op, exponent):
        _check_power(base, exponent)
        if base == 0 and exponent.is_number and exponent <= 0:
            raise InvalidInput(f"0^{exponent} is undefined")
        return base**exponent


def _depth(tree: Tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree):
            deepest = max(deepest, depth)
            stack.extend((child, depth + (node.data in {"call", "call_power", "group", "pow"})) for child in node.children)
    return deepest


def _letters(tree: Tree) -> list[Token]:
    return [token for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "VARIABLE")]


def _header(lhs: Tree | Token) -> tuple[str, str | None]:
    """The name and (optional) variable of 'f(x) =' or 'y ='; anything else on the left is an error."""
    if isinstance(lhs, Tree) and lhs.data == "variable":
        return str(lhs.children[0]), None
    if (
        isinstance(lhs, Tree) and lhs.data == "implicit_mul"
        and lhs.children[0].data == "variable"
        and lhs.children[1].data == "group"
        and isinstance(lhs.children[1].children[0], Tree) and lhs.children[1].children[0].data == "variable"
    ):
        return str(lhs.children[0].children[0]), str(lhs.children[1].children[0].children[0])
    raise InvalidInput("the left side of '=' must be a name like f(x) or y")


def _describe(error: UnexpectedInput, text: str) -> str:
    column = getattr(error, "column", None)
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        function = next((name for name in sorted(FUNCTIONS, key=len, reverse=True) if text.endswith(name)), None)
        if function is not None:
            return (f"cannot read {text!r}: {function!r} at column {len(text) - len(function) + 1} needs parentheses, "
                    f"e.g. {function}(x)")
        unclosed = "; a '(' is not closed" if text.count("(") > text.count(")") else ""
        return f"cannot read {text!r}: it ends too early at column {len(text) + 1}{unclosed}"
    if isinstance(error, UnexpectedCharacters):
        character = text[error.pos_in_stream] if error.pos_in_stream < len(text) else "?"
        word = text[error.pos_in_stream:].split("(")[0].strip()
        if character.isalpha() and len(word) > 1:
            return (f"cannot read {text!r}: unknown name {word!r} at column {column}; "
                    f"supported functions: {SUPPORTED_FUNCTIONS}")
        return f"cannot read {text!r}: unexpected character {character!r} at column {column}"
    token, previous = error.token, (getattr(error, "token_history", None) or [None])[-1]
    if previous is not None and previous.type == "FUNCTION":  # 'sin x': the name is the mistake, not the x
        return f"cannot read {text!r}: {str(previous)!r} at column {previous.column} needs parentheses, e.g. {previous}(x)"
    return f"cannot read {text!r}: unexpected {str(token)!r} at column {column}"


def _reject_unknown_names(text: str, pattern: str = r"[a-z]{2,}") -> None:
    """'floor(x)' reads as f*l*o*o*r*(x); name the unknown function instead of complaining about variables."""
    for match in re.finditer(pattern, text):
        if not any(name in match.group() for name in (*FUNCTIONS, "pi")):
            raise InvalidInput(f"unknown function {match.group()!r} at column {match.start() + 1}; "
                               f"supported: {SUPPORTED_FUNCTIONS}")


def parse_function(text: str, variable: str | None = None, name: str | None = None) -> ParsedFunction:
    """Parse a function as a person types it: 'sin(x^2)', '3x^2 + 2cos(x)', 'g(t) = t^3'.

    `variable` and `name` (from slots) must agree with a 'g(t) =' header when both are present.
    Raises InvalidInput with a one-line message naming what is wrong and where.
    """
    if not isinstance(text, str):
        raise InvalidInput("the function must be text")
    text = text.strip()
    if not text:
        raise InvalidInput("the function is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"the function is {len(text)} characters long; derivanim accepts at most {MAX_LENGTH}")
    if not text.isprintable():
        raise InvalidInput("the function contains a control character (newline, tab or similar)")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        _reject_unknown_names(text, r"[a-z]{2,}(?=\s*\()")  # 'max(x, 1)': the name, not the ',' after it
        raise InvalidInput(_describe(error, text)) from None
    if _depth(tree) > MAX_DEPTH:
        raise InvalidInput(f"the function is nested more than {MAX_DEPTH} levels deep")

    header_name, header_variable = None, None
    if tree.data == "definition":
        header_name, header_variable = _header(tree.children[0])
        tree = tree.children[1]
    letters = sorted({str(token) for token in _letters(tree)})
    if len(letters) > 1:
        _reject_unknown_names(text)
        raise InvalidInput(f"the function uses more than one variable ({', '.join(letters)}); it must use one")
    chosen = [v for v in (header_variable, variable, *letters) if v is not None]
    if len(set(chosen)) > 1:
        raise InvalidInput(f"the variable is ambiguous: {' vs '.join(dict.fromkeys(chosen))}")
    var = chosen[0] if chosen else "x"
    chosen_name = header_name or name or "f"
    if name is not None and header_name is not None and name != header_name:
        raise InvalidInput(f"the function's name is ambiguous: {header_name} vs {name}")
    if chosen_name == var:
        raise InvalidInput(f"the function's name {chosen_name!r} is also its variable")

    try:
        expr = _ToSympy().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, InvalidInput):
            raise error.orig_exc from None
        raise
    _check_finished(expr)
    return ParsedFunction(expr=expr, variable=symbol(var), name=chosen_name)


def _check_finished(expr: sympy.Expr) -> None:
    """Limits that only show once SymPy has combined the pieces: (x^50)^50, complex constants, sizes."""
    if sympy.count_ops(expr) > MAX_NODES:
        raise InvalidInput(f"the function is too large (more than {MAX_NODES} operations)")
    for power in expr.atoms(sympy.Pow):
        _check_power(power.base, power.exp)
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise InvalidInput("the function contains an infinite or undefined constant")
    if expr.is_number and not expr.is_real:
        raise InvalidInput("the function is not real-valued")
