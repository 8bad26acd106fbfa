"""Functions said in words, read back: 'the natural log of cosine x' is ln(cos(x)), 'e to the x squared' is e^(x^2).

The inverse of derivanim.verbalise. grammars/spoken.lark reads every bracketing the words allow; the reader walks the
Earley forest and ranks each stretch's readings by the conventions verbalise says functions by, so the conventional
reading comes first and the other plausible ones follow ('sine of x divided by x': sin(x/x) is a constant, so
sin(x)/x). Each penalty below is one broken convention:
- OPEN_BEFORE_MORE: an open phrase ("F of ...", "... over ...", "e to the two x") followed by more, as if it
  stopped early: 'the square root of x plus one' as sqrt(x) + 1.
- SIMPLE_EXPONENT: "to the" taking more than a simple exponent (a variable, constant or number) followed by an
  operator: 'e to the x plus one' as e^(x + 1) ("e to the x", "to the power of three halves" are closed; verbalise
  says e^(x + 1) 'e to the quantity x plus one').
- POWER_OF_POWER: 'e to the x squared' as (e^x)^2.
- SUM_OVER_SUM: 'x plus one over x minus one' as (x + 1)/(x - 1), which a teacher may well mean, though the
  convention ("over" takes the product before it) reads x + 1/(x - 1).
- JUXTAPOSED: factors side by side without "times" ('x e to the x'), ranked after a reading that says how they join.
The result is in the expression grammar's notation (grammar.notation), so parse_function reads it back. Nothing is
evaluated: the forest becomes SymPy objects through SymPy's constructors.
"""

import functools
import re
from dataclasses import dataclass
from fractions import Fraction

import sympy
from lark import Lark, Token
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.parsers.earley_forest import SymbolNode, TokenNode

from derivanim.errors import InvalidInput
from derivanim.grammar import FUNCTIONS, MAX_REQUEST_LENGTH, notation, parse_function, symbol
from derivanim.resources import resource_path
from derivanim.verbalise import FRACTION_WORDS, POWER_WORDS, SMALL_NUMBERS

OPEN_BEFORE_MORE = 10
SIMPLE_EXPONENT = 5
SUM_OVER_SUM = 4
POWER_OF_POWER = 3
JUXTAPOSED = 1
READINGS_KEPT = 6  # per node of the forest (4 and 12 read the catalog wordings and words.tsv the same)
CANDIDATES_PER_STRETCH = 3
PLAUSIBLE = OPEN_BEFORE_MORE  # a stretch's readings up to this many penalty points behind its best one
MAX_STRETCH_WORDS = 32  # verbalise says at most 24 words (and a few commas); bounds the worst case (under a second)

ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
            "tenth": 10}
FRACTIONS = {word: parts for parts, words in FRACTION_WORDS.items() for word in words} | {"halfs": 2}
OPERATORS = set("+-<>")  # beside words, they write a function: '2x + 5'; not '=' ('f(x) = x squared')
SYMBOLS = set("^*/()[]{}_|\\'")  # glued to words, they write one: 'x^2', 'sin(x)', "f'"
CLOSERS = {",", "and"}  # what ends an open phrase inside a longer one: 'the quantity ... ,', 'the quotient of ... and'
_WORDS = re.compile(r"-?\d+(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+|,|\S")


@dataclass(frozen=True)
class Reading:
    """One reading of some words: the function as a small tree of tuples (SymPy comes last, for the best ones), and
    what the conventions need to know about how it was said."""

    tree: tuple
    open: bool = False  # reaches to the end of the phrase
    simple: bool = False  # a variable, a constant or a number ('x', 'e', 'two', 'three halves')
    leads: bool = False  # begins with a simple operand and then an operator ('x plus one', 'x times sine x')
    raised: bool = False  # ends with "to the ..."
    grouped: bool = False  # 'the quantity ...,'


@dataclass(frozen=True)
class Words:
    """A rule that only names something: a function ('natural log' is ln), 'squared' in 'sine squared of x'."""

    name: str
    text: str


@functools.cache
def spoken_parser() -> Lark:
    """grammars/spoken.lark's Earley parser; it returns the whole forest, which the reader ranks itself."""
    return Lark(resource_path("grammars", "spoken.lark").read_text(), parser="earley", lexer="basic",
                ambiguity="forest")


@functools.cache
def _word_pattern() -> re.Pattern:
    """A word the grammar has a token for; runs of such words are where a spoken function may be."""
    patterns = [terminal.pattern.to_regexp() for terminal in spoken_parser().terminals]
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


def _known(word: str) -> bool:
    return word != " " and _word_pattern().fullmatch(word) is not None


@functools.cache
def _is_variable(word: str) -> bool:
    return re.fullmatch(spoken_parser().get_terminal("VARIABLE").pattern.to_regexp(), word) is not None


@functools.lru_cache(maxsize=1024)
def _can_start(word: str) -> bool:
    """Whether a function said in words may begin with this word ('the', 'x', 'sine'; not 'of', 'plus', ',')."""
    try:
        spoken_parser().parse(word)
    except UnexpectedToken as error:
        return error.token.start_pos > 0
    except UnexpectedInput:
        pass
    return True


# ----------------------------------------------------------------------------- from the forest to readings

def _number(text: str) -> Fraction:
    return Fraction(SMALL_NUMBERS.index(text)) if text in SMALL_NUMBERS else Fraction(text)


def _power_word(word: str) -> tuple:
    """The exponent 'squared' or 'cubed' says."""
    return ("num", Fraction(next(n for n, words in POWER_WORDS.items() if word in words)))


def _call(name: str, argument: tuple) -> tuple:
    return ("call", name, argument)


def _binary(operation: str, left: Reading, right: Reading, open: bool | None = None) -> Reading:
    return Reading((operation, left.tree, right.tree), open=right.open if open is None else open,
                   leads=left.simple or left.leads, raised=right.raised)


def _build(rule: str, parts: list) -> tuple[Reading | Words | None, int]:
    """The reading a rule makes of its parts (readings, names and tokens), and the penalty it adds; None for a
    reading the words cannot mean."""
    readings = [part for part in parts if isinstance(part, Reading)]
    names = [part for part in parts if isinstance(part, Words)]
    tokens = [part for part in parts if isinstance(part, Token)]
    match rule:
        case "negate":
            return Reading(("neg", readings[0].tree), open=readings[0].open), 0
        case "add" | "subtract" | "multiply":
            return _binary({"add": "add", "subtract": "sub", "multiply": "mul"}[rule], *readings), 0
        case "divide" | "quotient":
            return _binary("div", *readings, open=True), 0
        case "divide_sums":
            return _binary("div", *readings, open=True), SUM_OVER_SUM
        case "juxtapose":
            if readings[1].simple and readings[1].tree[0] == "num":
                return None, 0  # 'x two' is not 2x
            # 'e to the three x' is e^(3x), not e^3 x
            return _binary("mul", *readings), JUXTAPOSED + (SIMPLE_EXPONENT if readings[0].raised else 0)
        case "scale":
            return Reading(("mul", readings[0].tree, readings[1].tree), open=readings[1].open,
                           raised=readings[1].raised), 0
        case "squared" | "cubed" | "ordinal_power" | "number_power":
            base = readings[0]
            if rule == "ordinal_power":
                text = next(name.text for name in names if name.name == "ordinal")
                exponent = ("num", Fraction(ORDINALS[text] if text in ORDINALS else int(text[:-2])))
            else:
                exponent = readings[1].tree if rule == "number_power" else _power_word(rule)
            return Reading(("pow", base.tree, exponent)), POWER_OF_POWER if base.raised else 0
        case "raised":
            base, exponent = readings
            closed = exponent.simple or exponent.grouped
            return (Reading(("pow", base.tree, exponent.tree), open=not closed, raised=True),
                    SIMPLE_EXPONENT if exponent.leads else 0)
        case "variable":
            return Reading(("var", str(tokens[0])), simple=True), 0
        case "digits" | "number_word":
            return Reading(("num", _number(str(tokens[0]))), simple=True), 0
        case "fraction":
            return Reading(("num", _number(str(tokens[0])) / FRACTIONS[names[0].text]), simple=True), 0
        case "e" | "pi":
            return Reading((rule,), simple=True), 0
        case "closed_quantity":
            return Reading(readings[0].tree, grouped=True), 0
        case "open_quantity":
            return Reading(readings[0].tree, open=True), 0
        case "closed_call" | "call":
            argument = ("var", str(tokens[-1])) if rule == "closed_call" else readings[-1].tree
            if rule == "closed_call" and readings:  # 'cosine two x'
                argument = ("mul", readings[0].tree, argument)
            return Reading(_call(names[0].name, argument), open=rule == "call"), 0
        case "closed_call_power" | "call_power":
            argument = ("var", str(tokens[-1])) if rule == "closed_call_power" else readings[-1].tree
            return Reading(("pow", _call(names[0].name, argument), _power_word(names[1].text)),
                           open=rule == "call_power"), 0
        case "square_root":
            return Reading(_call("sqrt", readings[0].tree), open=True), 0
        case "closed_square_root":
            return Reading(_call("sqrt", ("var", str(tokens[-1])))), 0
        case "cube_root" | "square_of" | "cube_of" | "reciprocal":
            exponent = {"cube_root": Fraction(1, 3), "square_of": 2, "cube_of": 3, "reciprocal": -1}[rule]
            return Reading(("pow", readings[0].tree, ("num", Fraction(exponent))), open=True), 0
        case "all_raised":
            return Reading(("pow", readings[0].tree, _power_word(names[-1].text))), 0
    if len(readings) == 1 and len(parts) == 1:
        return readings[0], 0  # a rule that only passes its one part on: term, product, factor, atom, ...
    return Words(rule, " ".join(str(token) for token in tokens) or " ".join(name.text for name in names)), 0


def _order(parts: list) -> int:
    """Penalty points for open parts followed by more (a comma or the 'and' of 'the quotient of' closes them)."""
    points = 0
    for part, after in zip(parts, parts[1:]):
        if isinstance(part, Reading) and part.open and not (isinstance(after, Token) and str(after) in CLOSERS):
            points += OPEN_BEFORE_MORE
    return points


class _Ranker:
    """The best few readings of every node of the forest, each node once (the forest shares its nodes)."""

    def __init__(self):
        self.memo: dict[int, list] = {}

    def readings(self, node) -> list[tuple[int, object]]:
        """(penalty, reading) of a node, best first: a Token for a token node, a tuple of parts for an intermediate
        node (a rule half-read), a Reading or Words for a rule."""
        if isinstance(node, TokenNode):
            return [(0, node.token)]
        key = id(node)
        if key not in self.memo:
            self.memo[key] = self._rank(node)
        return self.memo[key]

    def _parts(self, node) -> list[tuple[int, tuple]]:
        if isinstance(node, SymbolNode) and node.is_intermediate:
            return self.readings(node)
        return [(points, (reading,)) for points, reading in self.readings(node)]

    def _rank(self, node: SymbolNode) -> list[tuple[int, object]]:
        found: dict[object, int] = {}
        for packed in node.children:
            sequences = [(0, ())]
            for child in packed.children:
                sequences = [(a + b, left + right) for a, left in sequences for b, right in self._parts(child)]
                sequences = sorted(sequences, key=lambda item: item[0])[:READINGS_KEPT]
            for points, parts in sequences:
                if node.is_intermediate:
                    reading, extra = parts, 0
                else:
                    rule = packed.rule.alias or packed.rule.origin.name
                    reading, extra = _build(rule, list(parts))
                    if reading is None:
                        continue
                    extra += _order(list(parts))
                    if isinstance(reading, Words) and packed.rule.origin.name == "fn":
                        reading = Words(packed.rule.alias, reading.text)
                total = points + extra
                if total < found.get(reading, total + 1):
                    found[reading] = total
        return sorted(((points, reading) for reading, points in found.items()), key=lambda item: item[0])[
            :READINGS_KEPT]


# ----------------------------------------------------------------------------- from readings to functions

def _sympy(tree: tuple) -> sympy.Expr:
    """SymPy's constructors on a reading's tree: nothing is parsed or evaluated as text."""
    kind, *args = tree
    if kind == "var":
        return symbol(args[0])
    if kind == "num":
        return sympy.Rational(args[0].numerator, args[0].denominator)
    if kind == "e":
        return sympy.E
    if kind == "pi":
        return sympy.pi
    if kind == "call":
        return FUNCTIONS[args[0]](_sympy(args[1]))
    if kind == "neg":
        return -_sympy(args[0])
    left, right = _sympy(args[0]), _sympy(args[1])
    if kind == "div" and right == 0:
        raise InvalidInput("division by zero")
    return {"add": sympy.Add, "sub": lambda a, b: a - b, "mul": sympy.Mul, "div": lambda a, b: a / b,
            "pow": sympy.Pow}[kind](left, right)


def _function(tree: tuple) -> str | None:
    """The reading in the expression grammar's notation, if it is a function of one variable the grammar takes."""
    try:
        expr = _sympy(tree)
        if len(expr.free_symbols) != 1 or expr.is_Symbol:
            return None  # a constant ('one'), two variables, or the variable alone ('at x')
        text = notation(expr)
        parse_function(text)  # the project's limits: sizes, division by zero, undefined constants
    except (InvalidInput, ValueError, TypeError, ZeroDivisionError):
        return None
    return text


def _functions(forest) -> list[tuple[int, str]]:
    """The functions of a forest's plausible readings, as (penalty, function) best first; only the few best become
    SymPy objects (a reading may be a constant, as 'sine of x divided by x' read strictly is)."""
    found: dict[str, int] = {}
    for points, reading in _Ranker().readings(forest):
        if found and (len(found) == CANDIDATES_PER_STRETCH or points > min(found.values()) + PLAUSIBLE):
            break
        if isinstance(reading, Reading) and (function := _function(reading.tree)) is not None:
            found.setdefault(function, points)
    return sorted(((points, function) for function, points in found.items()), key=lambda item: item[0])


def _stretch(words: list[str], start: int) -> tuple[int, list[tuple[int, str]]] | None:
    """The longest stretch of `words` from `start` that says a function: (its end, its functions)."""
    if not _can_start(words[start]):
        return None
    end = len(words)
    while end > start and any(_is_variable(word) for word in words[start:end]):  # a function has its variable
        text = " ".join(words[start:end])
        try:
            forest = spoken_parser().parse(text)
        except UnexpectedToken as error:  # nothing longer than the words before the one it stopped at reads
            end = start + text[:error.token.start_pos].count(" ")
            continue
        except UnexpectedInput:  # it ends too early: 'the square root of'
            end -= 1
            continue
        functions = _functions(forest)
        if functions:
            return end, functions
        end -= 1
    return None


def says_only_a_function(request: str) -> bool:
    """Whether every word of `request` belongs to one function said in words: 'one minus 4 x', 'e to the x squared'
    (not 'Animate x squared', nor 'x squared, please')."""
    if not isinstance(request, str) or len(request) > MAX_REQUEST_LENGTH or not request.isprintable():
        return False
    runs = _runs(request)
    if len(runs) != 1 or len(runs[0]) != len(_WORDS.findall(request.lower())):
        return False
    found = _stretch(runs[0], 0)
    return found is not None and found[0] == len(runs[0])


def _runs(request: str) -> list[list[str]]:
    """The request's runs of words the grammar knows, lower-cased: 'Animate the derivative of x squared, please'
    has the runs ['the'] and ['of', 'x', 'squared', ',']. A run beside an operator, or glued to a symbol, of the
    expression grammar is part of a written function, left to written_functions: 'x^2 plus sine x', '2x + 5'."""
    tokens = list(_WORDS.finditer(request.lower()))
    runs, run, written = [], [], False
    for i, match in enumerate(tokens):
        if _known(match.group()):
            if not run:
                written = i > 0 and _writes(tokens[i - 1], match)
            run.append(match.group())
            continue
        if run and not (written or _writes(match, tokens[i - 1])):
            runs.append(run)
        run = []
    return [*runs, run] if run and not written else runs


def _writes(symbol: re.Match, word: re.Match) -> bool:
    """Whether `symbol` makes the word beside it part of a written function."""
    touching = symbol.end() == word.start() or word.end() == symbol.start()
    return symbol.group() in OPERATORS or symbol.group() in SYMBOLS and touching


@functools.lru_cache(maxsize=256)
def spoken_functions(request: str) -> tuple[str, ...]:
    """The functions `request` says in words, in the expression grammar's notation, most plausible first:
    'Animate the derivative of e to the x squared' gives ('e^(x^2)', ...). Every maximal run of words that reads
    as a function of one variable counts; each gives its conventional reading and up to two others within one
    broken convention of it. A request that says no function gives ()."""
    if not isinstance(request, str) or len(request) > MAX_REQUEST_LENGTH or not request.isprintable():
        return ()
    ranked = []
    for run in _runs(request):
        start = 0
        while start < len(run):
            found = _stretch(run[:start + MAX_STRETCH_WORDS], start)
            if found is None:
                start += 1
                continue
            end, functions = found
            start = end  # the next stretch starts after this one: not the 'x plus one' of 'sine of x plus one'
            best = functions[0][0]
            ranked += [(points - best > 0, points, len(ranked) + i, function)
                       for i, (points, function) in enumerate(functions[:CANDIDATES_PER_STRETCH])
                       if points - best <= PLAUSIBLE]
    return tuple(dict.fromkeys(function for *_, function in sorted(ranked)))
