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
from typing import NoReturn

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter
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
def expression_parser() -> Lark:
    """The expression grammar's LALR parser (grammars/expression.lark): parse_function reads functions with it, and
    the model filler walks its parse states and reads its FUNCTION terminal to constrain what a model may write."""
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
        tree = expression_parser().parse(text)
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



# --- the grammar's notation: SymPy expressions written the way people type them --------------------------------

# Functions SymPy may return that the grammar has no name for, written with ones it has.
_REWRITES = {
    sympy.sech: lambda u: 1 / sympy.cosh(u), sympy.csch: lambda u: 1 / sympy.sinh(u),
    sympy.coth: lambda u: sympy.cosh(u) / sympy.sinh(u), sympy.sign: lambda u: u / sympy.Abs(u),
    sympy.acot: lambda u: sympy.atan(1 / u), sympy.asec: lambda u: sympy.acos(1 / u),
    sympy.acsc: lambda u: sympy.asin(1 / u),
}
_NAMES = {function: name for name, function in FUNCTIONS.items() if isinstance(function, type)} | {
    sympy.log: "ln", sympy.Abs: "abs",  # one name where the grammar has several: ln (not log), abs
}
_PLAIN_NUMBER = re.compile(r"\d+$")


class _NotationPrinter(StrPrinter):
    """SymPy's str printer in the grammar's notation: ^, ln, sqrt, e^x, implicit times where it cannot mislead."""

    def _print_Exp1(self, expr) -> str:
        return "e"

    def _print_Pi(self, expr) -> str:
        return "pi"

    def _print_Function(self, expr) -> str:
        if expr.func not in _NAMES:
            raise ValueError(f"{expr.func.__name__} has no name in derivanim's grammar")
        return f"{_NAMES[expr.func]}({self._print(expr.args[0])})"

    def _print_exp(self, expr) -> str:
        return f"e^{self._exponent(expr.args[0])}"

    def _exponent(self, exponent: sympy.Expr) -> str:
        """x^2, x^n, x^pi bare; anything longer in parentheses, so that x^(1/3) and e^(-x) say what they mean."""
        bare = exponent.is_Symbol or exponent in (sympy.pi, sympy.E) or (exponent.is_Integer and exponent >= 0)
        return self._print(exponent) if bare else f"({self._print(exponent)})"

    def _print_Pow(self, expr) -> str:
        base, exponent = expr.args
        if exponent == sympy.S.Half:
            return f"sqrt({self._print(base)})"
        if exponent.is_Rational and exponent < 0:
            return self._print_Mul(expr)  # below a fraction bar: 1/x^2, 1/sqrt(x)
        # a named function's call is one piece (sin(x)^2); e^u is a power itself, so (e^u)^v keeps its parentheses
        bare = (base.is_Symbol or base in (sympy.pi, sympy.E) or (base.is_Integer and base > 0)
                or (base.func in _NAMES and base.func is not sympy.exp))
        base_text = self._print(base) if bare else f"({self._print(base)})"
        return f"{base_text}^{self._exponent(exponent)}"

    def _print_Mul(self, expr) -> str:
        coefficient, rest = expr.as_coeff_Mul()
        if coefficient < 0:
            return "-" + self._print(sympy.Mul(-coefficient, rest, evaluate=False) if coefficient != -1 else rest)
        above, below = [], []
        if coefficient.is_Rational:
            above += [coefficient.p] if coefficient.p != 1 else []
            below += [coefficient.q] if coefficient.q != 1 else []
        elif coefficient != 1:
            above.append(coefficient)
        for factor in (rest.as_ordered_factors() if rest.is_Mul else [rest]):
            if factor.is_Pow and factor.exp.is_Rational and factor.exp < 0:
                below.append(sympy.Pow(factor.base, -factor.exp))
            elif factor != 1:
                above.append(factor)
        top = self._product(above) if above else "1"
        if not below:
            return top
        bottom = self._product(below)  # one factor is already in parentheses where it needs them: (x - 1)
        return f"{top}/{bottom}" if len(below) == 1 else f"{top}/({bottom})"

    def _product(self, factors: list) -> str:
        """Factors side by side: 2x, 2sin(x), x sin(x), x(x + 1), (x - 1)(x + 1); a space after a power, whose
        exponent could seem to run on (x^2 (x + 1), not x^2(x + 1)); a '*' before a number (3*2^x)."""
        texts = [self.parenthesize(sympy.sympify(f), PRECEDENCE["Mul"], strict=False) for f in factors]
        joined = texts[0]
        for before, text in zip(texts, texts[1:]):
            if text[0].isdigit():
                joiner = "*"
            elif _PLAIN_NUMBER.match(before) or (text[0] == "(" and (before.isalpha() or before.endswith(")")
                                                                      and "^" not in before)):
                joiner = ""
            else:
                joiner = " "
            joined += joiner + text
        return joined


def notation(expr: sympy.Expr) -> str:
    """`expr` in the grammar's own notation ('(x^2 - 2x - 1)/(x - 1)^2', '2x e^(x^2)', 'ln(x) + 1'), which
    parse_function reads back to an equal expression. Raises ValueError for what the grammar cannot write."""
    for function, rewrite in _REWRITES.items():
        expr = expr.replace(function, rewrite)
    return _NotationPrinter().doprint(expr)


# --- requests: the phrasings around a function (grammars/request.lark) ----------------------------------------

MAX_REQUEST_LENGTH = 2 * MAX_LENGTH  # a function of at most MAX_LENGTH characters and the words around it
_FINAL_MARK = re.compile(r"\s*[?.]+$")  # "derivative of x^3?"; not "!", which is "x!" (factorial), refused


@dataclass(frozen=True)
class Settings:
    """Where the tangent starts and the window to show, as a request writes them; None where it does not."""

    x0: float | None = None
    window: tuple[float, float] | None = None

    def __post_init__(self):
        if self.x0 is not None and not math.isfinite(self.x0):
            raise InvalidInput(f"x0 must be a finite number, not {self.x0}")
        if self.window is not None:
            low, high = self.window
            if not (math.isfinite(low) and math.isfinite(high)):
                raise InvalidInput(f"the window [{low}, {high}] must be two finite numbers")
            if not low < high:
                raise InvalidInput(f"the window [{low:g}, {high:g}] is empty or reversed: give the left end first")


@dataclass(frozen=True)
class Request:
    """What the request grammar reads: the function exactly as written (a span of the request), the variable when
    the request names one ('d/dt', 'with respect to t'), and the settings it gives."""

    function: str
    variable: str | None = None
    settings: Settings = Settings()


@cache
def _request_parser() -> Lark:
    path = resource_path("grammars", "request.lark")
    return Lark(path.read_text(), parser="lalr", start=["request", "setting"], import_paths=[path.parent],
                propagate_positions=True)


@cache
def request_words() -> frozenset[str]:
    """The words of the request grammar ('derivative', 'tangent', 'between', ...): words that do not make a
    request a sentence."""
    patterns = [terminal.pattern.value for terminal in _request_parser().terminals if terminal.pattern.flags]
    return frozenset(word for pattern in patterns for word in re.findall(r"[a-z]{2,}", pattern))


def _span(text: str, tree: Tree) -> str:
    return text[tree.meta.start_pos:tree.meta.end_pos]


def _value(text: str, tree: Tree) -> float:
    """A window end or a point: '-pi/2' read by the expression grammar as a constant, then a float."""
    return float(parse_function(_span(text, tree)).expr)


def _values(tree: Tree) -> list[Tree]:
    """The numbers of a setting, left to right."""
    return [node for node in tree.iter_subtrees_topdown() if node.data == "value"]


def _settings(readings: list[tuple[str, Tree]], variable: str) -> Settings:
    """The x0 and window of `point` and `window` trees (each with the text it was read from); one of each at most."""
    points = [(text, tree) for text, tree in readings if tree.data == "point"]
    windows = [(text, tree) for text, tree in readings if tree.data == "window"]
    for kind, found in (("points", points), ("windows", windows)):
        if len(found) > 1:
            raise InvalidInput(f"the request gives {len(found)} {kind}: "
                               + " and ".join(repr(_span(text, tree)) for text, tree in found))
    for text, tree in points + windows:
        letter = next((str(token)[0] for token in tree.children if isinstance(token, Token)
                       and token.type in {"VARIABLE", "X0"}), variable)
        if letter != variable:
            raise InvalidInput(f"{_span(text, tree)!r} is about {letter}, but the function's variable is {variable}")
    x0 = window = None
    if points:
        text, point = points[0]
        x0 = _value(text, _values(point)[0])
    if windows:
        text, interval = windows[0]
        window = tuple(_value(text, tree) for tree in _values(interval))
    return Settings(x0=x0, window=window)


def _function_span(text: str, tree: Tree) -> str:
    """The function as written: '(x^2+1)' of 'd/dx (x^2+1)' or '(x^2+1)'' is x^2+1."""
    node = tree.children[0]
    if node.data == "expression__group":
        node = node.children[0]
    return _span(text, node).strip()


def read_request(text: str) -> Request | None:
    """Read a function or a phrasing around one ('derivative of x^2 on [-2, 2] at x = 1'); None if the request
    grammar does not read the text (a sentence, or a typo the expression grammar will name).

    Raises InvalidInput when it reads the phrasing but what it says is wrong: a function outside the expression
    grammar, 'd/dt' of a function of x, two windows, a reversed window.
    """
    if not isinstance(text, str) or len(text) > MAX_REQUEST_LENGTH or not text.isprintable():
        return None
    body = _FINAL_MARK.sub("", text.strip())
    try:
        tree = _request_parser().parse(body, start="request")
    except UnexpectedInput:
        return None
    target = next(child for child in tree.children if isinstance(child, Tree) and child.data in {"target", "primed"})
    if target.data == "primed" and target.children[0].data not in {"expression__call", "expression__call_power",
                                                                   "expression__group"}:
        return None  # "x'" or "2'": nothing for a prime to be unambiguous about
    function = _function_span(body, target)
    named = [str(token)[-1].lower() for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "D_BY")]
    named += [str(token) for respect in tree.find_data("respect") for token in respect.children
              if isinstance(token, Token) and token.type == "VARIABLE"]
    if len(set(named)) > 1:
        raise InvalidInput(f"the request names more than one variable ({', '.join(dict.fromkeys(named))})")
    parsed = parse_function(function)
    if named and parsed.expr.free_symbols and str(parsed.variable) != named[0]:
        raise InvalidInput(f"the request differentiates with respect to {named[0]}, but {function!r} is a function "
                           f"of {parsed.variable}")
    variable = named[0] if named else None
    settings = [(body, setting) for setting in next(tree.find_data("settings")).children]
    return Request(function=function, variable=variable, settings=_settings(settings, variable or str(parsed.variable)))


def refuse(text: str) -> NoReturn:
    """Raise InvalidInput saying why neither grammar reads `text`: the request grammar's reason for a phrasing
    ('derivative of __import__('os')'), the expression grammar's for anything else ('sin(x', 'floor(x)')."""
    if (isinstance(text, str) and text.isprintable() and len(text) <= MAX_REQUEST_LENGTH
            and {word.lower() for word in re.findall(r"[A-Za-z]{2,}", text)} & request_words()):
        body = _FINAL_MARK.sub("", text.strip())
        try:
            _request_parser().parse(body, start="request")
        except UnexpectedInput as error:
            raise InvalidInput(_describe(error, body)) from None
    parse_function(text)
    raise InvalidInput(f"cannot read {text!r} as a function or a request")


def _setting_end(text: str, start: int) -> int | None:
    """Where the longest stretch of `text` from `start` that the request grammar reads as one setting ends, if any."""
    interactive = _request_parser().parse_interactive(text[start:], start="setting")
    end = None
    try:
        for token in interactive.lexer_thread.lex(interactive.parser_state):
            interactive.feed_token(token)
            try:
                interactive.copy().feed_eof()
                end = start + token.end_pos
            except UnexpectedInput:
                pass
    except UnexpectedInput:
        pass
    return end


def find_settings(text: str, variable: str = "x") -> Settings:
    """The x0 and window a sentence writes ('Teach the chain rule with sin(x^2) on [-2, 2] at x = 1'), found with
    the request grammar's own setting rules wherever they stand; raises InvalidInput as read_request does."""
    if not isinstance(text, str) or len(text) > MAX_REQUEST_LENGTH or not text.isprintable():
        return Settings()
    text = _FINAL_MARK.sub("", text)
    readings, position = [], 0
    for start in [match.start() for match in re.finditer(r"(?:(?<=\s)|^|(?=,))\S", text)]:
        end = _setting_end(text, start) if start >= position else None
        if end is not None:
            stretch = text[start:end]
            readings.append((stretch, _request_parser().parse(stretch, start="setting")))
            position = end
    return _settings(readings, variable)
