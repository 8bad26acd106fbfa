"""The function catalog the corpus is built from, and the instructions that ask for each animation.

Four curriculum levels, as in the DerivativeAnimator paper:
- foundation: polynomials, linear functions, simple powers;
- conceptual: one sin/cos/tan/e^x/ln/sqrt with scaling and shifts;
- application: products, quotients, simple compositions;
- advanced: nested compositions, triple products, rational functions with poles.

`data/functions/<level>.txt` holds the default catalog (134/135/134/134 functions). It is written by
`generate_catalog` from the families below with a fixed seed and committed, so that `derivanim data build`
reads it. Larger corpora grow it with `random_function`, a generator of random expression trees per level.
Every function is a SymPy tree printed in the grammar's syntax, read back by the grammar, and kept only if
the rules filler turns it into a verified animation and no equivalent function is already present.
"""

import cmath
import random
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy
from sympy.printing.str import StrPrinter

from derivanim.calculus import SIMPLIFY_BUDGET
from derivanim.errors import InvalidInput
from derivanim.grammar import parse_function, symbol

LEVELS = ("foundation", "conceptual", "application", "advanced")
DEFAULT_LEVEL_SIZES = {"foundation": 134, "conceptual": 135, "application": 134, "advanced": 134}
LEVEL_DESCRIPTIONS = {
    "foundation": "polynomials, linear functions and simple powers",
    "conceptual": "one sin, cos, tan, e^x, ln or sqrt with scaling and shifts",
    "application": "products, quotients and simple compositions",
    "advanced": "nested compositions, triple products and rational functions with poles",
}
DEFAULT_SEED = 0
MAX_AXIS = 1e6  # |y| an axis of the scene may reach
MAX_WIGGLES = 30  # sign changes of f' across the window

X = symbol("x")


# ----------------------------------------------------------------------------- printing and identity

class GrammarPrinter(StrPrinter):
    """SymPy's str printer, speaking the project grammar: x^2, e^(-x), ln(x), abs(x), e."""

    def _print_Pow(self, expr, rational=False):
        if isinstance(expr.base, sympy.exp):  # (e^x)^(1/3) must keep its parentheses
            return f"({self._print(expr.base)})^{self.parenthesize(expr.exp, 1000)}".replace("**", "^")
        return super()._print_Pow(expr, rational).replace("**", "^")

    def _print_exp(self, expr):
        argument = expr.args[0]
        return f"e^{self._print(argument)}" if argument.is_Symbol else f"e^({self._print(argument)})"

    def _print_Exp1(self, expr):
        return "e"

    def _print_log(self, expr):
        return f"ln({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"


def to_text(expr: sympy.Expr) -> str:
    """`expr` in the grammar's syntax; parse_function reads it back to the same tree."""
    return GrammarPrinter().doprint(expr)


def rename_variable(text: str, variable: str) -> str:
    """The same function written in another letter: 'x^2*sin(x)' -> 't^2*sin(t)' (through SymPy, never by regex)."""
    parsed = parse_function(text)
    return to_text(parsed.expr.subs(parsed.variable, symbol(variable)))


def canonical_form(text: str) -> str:
    """SymPy's canonical tree of a function, in x: two texts with the same form are the same function."""
    parsed = parse_function(text)
    return sympy.srepr(parsed.expr.subs(parsed.variable, X))


_PROBES = (0.37 + 0.21j, 1.13 - 0.42j, -0.71 + 0.93j, 2.3 + 0.17j, -1.9 - 0.6j)
_CHECKS = (0.53 + 0.11j, -1.21 + 0.37j, 1.71 - 0.29j)


def _values(expr: sympy.Expr, points: Iterable[complex]) -> list[complex | None]:
    compiled = sympy.lambdify(X, expr, modules=["numpy"])
    values = []
    for point in points:
        try:
            with np.errstate(all="ignore"):
                value = complex(compiled(np.complex128(point)))
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            value = None
        values.append(value if value is not None and cmath.isfinite(value) else None)
    return values


def fingerprint(expr: sympy.Expr) -> tuple:
    """Values at a few complex points, rounded: equivalent functions (sin(2x) and 2sin(x)cos(x)) share it."""
    return tuple(None if v is None else (round(v.real, 6), round(v.imag, 6)) for v in _values(expr, _PROBES))


def _close(a: complex | None, b: complex | None) -> bool:
    return (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-9 * max(1.0, abs(a)))


class FunctionSet:
    """Functions kept so far, with what makes two of them 'the same': SymPy's canonical tree, or equal values
    at the probe points confirmed at three more (a numerical stand-in for simplify(a - b) == 0)."""

    def __init__(self):
        self._forms: set[str] = set()
        self._by_fingerprint: dict[tuple, list[sympy.Expr]] = {}

    def __len__(self) -> int:
        return len(self._forms)

    def equivalent_present(self, expr: sympy.Expr) -> bool:
        if sympy.srepr(expr) in self._forms:
            return True
        others = self._by_fingerprint.get(fingerprint(expr), [])
        if not others:
            return False
        mine = _values(expr, _CHECKS)
        return any(all(map(_close, mine, _values(other, _CHECKS))) for other in others)

    def add(self, expr: sympy.Expr) -> bool:
        """Add `expr` (a tree in x) unless an equivalent one is present; True if it was added."""
        if self.equivalent_present(expr):
            return False
        self._forms.add(sympy.srepr(expr))
        self._by_fingerprint.setdefault(fingerprint(expr), []).append(expr)
        return True


def usable(text: str) -> bool:
    """The rules filler makes a verified animation of `text` with no repair, the animation can be read (sensible),
    and f' is within the size up to which calculus.simplest tries every form (SIMPLIFY_BUDGET operations), so the
    corpus shows f' as simply as SymPy can write it."""
    from derivanim.api import fill

    try:
        parsed = parse_function(text)
        derivative = sympy.diff(parsed.expr, parsed.variable)
        if sympy.count_ops(derivative) > SIMPLIFY_BUDGET:
            return False
        animation = fill(text, filler="rules")
        return not animation.repairs and sensible(animation, derivative)
    except Exception:  # anything the pipeline cannot turn into an animation is not usable, whatever the reason
        return False


def sensible(animation, derivative: sympy.Expr) -> bool:
    """Verification accepts sin(2e^(4x+2)) and e^(6e^(x/2+3)); nobody can read their graphs. Keep functions whose
    axes stay within MAX_AXIS and whose f' changes sign at most MAX_WIGGLES times across the window."""
    from derivanim.calculus import evaluator

    plan = animation.plan
    if max(abs(plan.f_axis.low), abs(plan.f_axis.high), abs(plan.df_axis.low), abs(plan.df_axis.high)) > MAX_AXIS:
        return False
    slopes = evaluator(derivative, symbol(plan.variable))(np.linspace(plan.x_min, plan.x_max, 2001))
    signs = np.sign(slopes[np.isfinite(slopes) & (slopes != 0)])
    return int(np.count_nonzero(signs[1:] != signs[:-1])) <= MAX_WIGGLES


def fits_level(expr: sympy.Expr, level: str) -> bool:
    """SymPy may fold a drawn tree into something simpler (x^3*sqrt(x) is x^(7/2)): keep it only if it still
    belongs to its level."""
    calls = [call for call in sympy.preorder_traversal(expr) if isinstance(call, sympy.Function)]
    roots = [p for p in expr.atoms(sympy.Pow) if p.exp.is_Rational and not p.exp.is_Integer]
    if level == "foundation":
        return expr.is_polynomial(X)
    if level == "conceptual":
        return len(calls) + len(roots) == 1 and all(
            u.args[0].is_polynomial(X) and sympy.degree(u.args[0], X) == 1 for u in calls + roots)
    if expr.is_polynomial(X):
        return False
    rest = expr.as_coeff_Mul()[1]
    return not (isinstance(rest, sympy.Pow) and rest.base == X) and rest != X


def accept(expr: sympy.Expr, kept: FunctionSet, level: str) -> str | None:
    """The text of `expr` if it belongs to `level`, round-trips through the grammar, is new to `kept`, and is
    usable; it is then added to `kept`."""
    if not expr.has(X) or expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I) or not fits_level(expr, level):
        return None
    text = to_text(expr)
    try:
        parsed = parse_function(text)
    except InvalidInput:
        return None
    if parsed.expr != expr or kept.equivalent_present(expr) or not usable(text):
        return None
    kept.add(expr)
    return text


# ----------------------------------------------------------------------------- the default catalog: families

R = sympy.Rational


def _nonzero(rng: random.Random, low: int, high: int) -> int:
    return rng.choice([k for k in range(low, high + 1) if k != 0])


def _coefficient(rng: random.Random) -> sympy.Expr:
    return rng.choice([1, 1, 2, 3, 4, 5, -1, -2, -3, R(1, 2), R(3, 2), R(1, 3), R(-1, 2)])


def _polynomial(rng: random.Random, degree: int, terms: int) -> sympy.Expr:
    powers = sorted(rng.sample(range(degree), min(terms - 1, degree)), reverse=True)
    return _nonzero(rng, -4, 5) * X**degree + sum(_nonzero(rng, -9, 9) * X**p for p in powers)


def _linear_inside(rng: random.Random) -> sympy.Expr:
    """b*x + c, the argument of a scaled and shifted function."""
    b = rng.choice([1, 1, 2, 3, -1, R(1, 2), R(1, 3), 4, -2])
    c = rng.choice([0, 0, 0, 1, -1, 2, -2, 3])
    return b * X + c


FOUNDATION = [
    lambda rng: _nonzero(rng, -9, 9) * X + _nonzero(rng, -9, 9),  # linear
    lambda rng: rng.choice([R(1, 2), R(3, 2), R(-2, 3), R(5, 4)]) * X + rng.randint(-5, 5),
    lambda rng: _polynomial(rng, 2, rng.randint(2, 3)),  # quadratics
    lambda rng: _polynomial(rng, 3, rng.randint(2, 4)),  # cubics
    lambda rng: _polynomial(rng, rng.randint(4, 6), rng.randint(2, 3)),  # sparse higher degree
    lambda rng: _coefficient(rng) * X ** rng.randint(2, 8),  # simple powers
    lambda rng: X ** rng.randint(2, 7) + _nonzero(rng, -6, 6),
    lambda rng: X**3 / 3 - _nonzero(rng, 1, 9) * X if rng.random() < 0.5 else X**2 / 2 + _nonzero(rng, -5, 5) * X,
]

_ELEMENTARY = [sympy.sin, sympy.cos, sympy.tan, sympy.exp, sympy.log, sympy.sqrt]


def _scaled_shifted(rng: random.Random, function: Callable) -> sympy.Expr:
    """a*F(b*x + c) + d, with some of a, b, c, d left at their neutral values."""
    a = _coefficient(rng) if rng.random() < 0.6 else 1
    d = rng.choice([1, -1, 2, -2, 3]) if rng.random() < 0.4 else 0
    inside = _linear_inside(rng) if rng.random() < 0.8 else X
    return a * function(inside) + d


CONCEPTUAL = [lambda rng, F=F: _scaled_shifted(rng, F) for F in _ELEMENTARY]

_SIMPLE = [
    lambda rng: sympy.sin(rng.choice([1, 2, 3]) * X), lambda rng: sympy.cos(rng.choice([1, 2, 3]) * X),
    lambda rng: sympy.exp(rng.choice([1, -1, 2, R(1, 2), -2]) * X), lambda rng: sympy.log(X),
    lambda rng: sympy.sqrt(X), lambda rng: sympy.tan(X), lambda rng: sympy.log(X + rng.choice([1, 2, 3])),
]


def _simple(rng: random.Random) -> sympy.Expr:
    return rng.choice(_SIMPLE)(rng)


def _inner_polynomial(rng: random.Random) -> sympy.Expr:
    return rng.choice([X**2, X**2 + _nonzero(rng, 1, 4), rng.choice([2, 3]) * X**2 - 1, X**3, X**2 - X, X**3 - X,
                       1 - X**2])


APPLICATION = [
    lambda rng: X ** rng.randint(1, 4) * _simple(rng),  # x^n * F(x)
    lambda rng: _coefficient(rng) * _simple(rng) * _simple(rng),  # F(x) * G(x)
    lambda rng: _simple(rng) / X ** rng.randint(1, 2),  # F(x) / x^n
    lambda rng: _simple(rng) / (X**2 + rng.randint(1, 4)),  # F(x) / (x^2 + c): no pole
    lambda rng: (rng.choice([X, X**2, X - 1, 2 * X + 1])) / (X**2 + rng.randint(1, 4)),
    lambda rng: rng.choice([sympy.sin, sympy.cos, sympy.exp, sympy.sqrt, sympy.log])(_inner_polynomial(rng)),
    lambda rng: rng.choice([sympy.exp(-X**2 * rng.choice([1, R(1, 2)])), sympy.log(X**2 + rng.randint(1, 5)),
                            sympy.sqrt(X**2 + rng.randint(1, 9))]),
    lambda rng: (rng.choice([X, 2 * X, X**2]) + _nonzero(rng, -3, 3)) ** rng.randint(2, 6),  # (u)^n
    lambda rng: rng.choice([sympy.exp, sympy.sqrt])(rng.choice([sympy.sin, sympy.cos])(rng.choice([1, 2]) * X)
                                                    + rng.choice([0, 2])),
]


def _nested(rng: random.Random) -> sympy.Expr:
    outer = rng.choice([sympy.sin, sympy.cos, sympy.exp, lambda u: sympy.log(u + 3), lambda u: sympy.sqrt(u + 2)])
    middle = rng.choice([sympy.sin, sympy.cos, lambda u: sympy.exp(-u), sympy.atan])
    inner = rng.choice([X, X**2, 2 * X, X**2 + 1, X / 2, 1 - X**2])
    return outer(middle(inner))


def _triple(rng: random.Random) -> sympy.Expr:
    factors = rng.sample([X ** rng.randint(1, 2), sympy.sin(X), sympy.cos(X), sympy.exp(rng.choice([1, -1]) * X),
                          sympy.log(X), sympy.sqrt(X + 1), X + rng.randint(1, 3)], 3)
    return sympy.Mul(*factors)


def _pole_rational(rng: random.Random) -> sympy.Expr:
    """A rational function whose denominator has real roots inside the usual window."""
    r, s = rng.sample([-3, -2, -1, 1, 2, 3], 2)
    denominator = rng.choice([X - r, X**2 - r**2, (X - r) * (X - s), X**2 - abs(r) * X, X**3 - r**2 * X])
    numerator = rng.choice([1, X, X**2, X + s, X**2 + 1, X**3, 2 * X - 1, _nonzero(rng, 2, 5)])
    return numerator / denominator


ADVANCED = [
    _nested, _nested, _triple, _triple, _pole_rational, _pole_rational,
    lambda rng: rng.choice([sympy.sin, sympy.cos])(_inner_polynomial(rng)) ** rng.randint(2, 3),  # sin^n(poly)
    lambda rng: sympy.exp(rng.choice([sympy.sin, sympy.cos])(X)) * _simple(rng) * X,  # product with a composition
    lambda rng: rng.choice([sympy.sin, sympy.cos, sympy.tan])(X) / (X - rng.choice([-2, -1, 1, 2])),  # trig pole
]

FAMILIES = {"foundation": FOUNDATION, "conceptual": CONCEPTUAL, "application": APPLICATION, "advanced": ADVANCED}


def _collect(level: str, count: int, rng: random.Random, kept: FunctionSet, draw: Callable, limit: int) -> list[str]:
    found: list[str] = []
    for _ in range(limit):
        if len(found) == count:
            return found
        text = accept(sympy.sympify(draw(rng)), kept, level)
        if text is not None:
            found.append(text)
    raise RuntimeError(f"only {len(found)} of {count} {level} functions after {limit} draws")


def generate_catalog(seed: int = DEFAULT_SEED, sizes: dict[str, int] | None = None) -> dict[str, list[str]]:
    """The default catalog: for each level, functions drawn round-robin from its families with a fixed seed."""
    sizes = sizes or DEFAULT_LEVEL_SIZES
    kept = FunctionSet()
    catalog = {}
    for level in LEVELS:
        rng = random.Random(f"catalog-{seed}-{level}")
        families = FAMILIES[level]
        turn = iter(range(10**9))
        catalog[level] = _collect(level, sizes[level], rng, kept,
                                  lambda r: families[next(turn) % len(families)](r), 60 * sizes[level])
    return catalog


def catalog_file(folder: Path, level: str) -> Path:
    return Path(folder) / f"{level}.txt"


def write_catalog(catalog: dict[str, list[str]], folder: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write folder/<level>.txt for each level: a two-line comment, then one function per line."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for level in LEVELS:
        header = (f"# derivanim function catalog, level {level}: {LEVEL_DESCRIPTIONS[level]}.\n"
                  f"# Written by `derivanim data catalog --seed {seed}`; "
                  "one function per line, in the grammar's syntax.\n")
        path = catalog_file(folder, level)
        path.write_text(header + "".join(f"{text}\n" for text in catalog[level]), encoding="utf-8")
        paths.append(path)
    return paths


def read_catalog(folder: Path) -> dict[str, list[str]]:
    """The functions of each level, in file order (comments and blank lines skipped)."""
    catalog = {}
    for level in LEVELS:
        lines = catalog_file(folder, level).read_text(encoding="utf-8").splitlines()
        catalog[level] = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return catalog


# ----------------------------------------------------------------------------- growing the catalog: random trees

def _random_polynomial(rng: random.Random) -> sympy.Expr:
    degree = rng.randint(1, 7)
    coefficient = rng.choice([_nonzero(rng, -12, 12), sympy.Rational(_nonzero(rng, -9, 9), rng.choice([2, 3, 4, 5]))])
    terms = [coefficient * X**degree] + [_nonzero(rng, -15, 15) * X**p for p in range(degree) if rng.random() < 0.45]
    return sympy.Add(*terms)


def _random_leaf(rng: random.Random) -> sympy.Expr:
    """A foundation or conceptual function: the leaves of the application and advanced trees."""
    if rng.random() < 0.35:
        return _random_polynomial(rng) if rng.random() < 0.4 else X ** rng.randint(1, 4)
    return _random_conceptual(rng, plain=rng.random() < 0.5)


def _random_conceptual(rng: random.Random, plain: bool = False) -> sympy.Expr:
    function = rng.choice(_ELEMENTARY)
    b = rng.choice([1, 2, 3, 4, 5, -1, -2, -3, R(1, 2), R(1, 3), R(2, 3), R(3, 2)])
    inside = b * X + (0 if plain else rng.randint(-4, 4))
    a = 1 if plain else rng.choice([1, 2, 3, 4, 5, 6, -1, -2, -3, -4, R(1, 2), R(3, 2), R(1, 4), R(5, 2)])
    return a * function(inside) + (0 if plain else rng.randint(-5, 5))


def _random_application(rng: random.Random) -> sympy.Expr:
    kind = rng.choice(["product", "quotient", "composition"])
    if kind == "product":
        return _random_leaf(rng) * _random_leaf(rng)
    if kind == "quotient":
        return _random_leaf(rng) / (X**2 + rng.randint(1, 6) if rng.random() < 0.5 else _random_leaf(rng))
    outer = rng.choice([sympy.sin, sympy.cos, sympy.exp, sympy.sqrt, sympy.log, lambda u: u ** rng.randint(2, 5)])
    return outer(_small_polynomial(rng) if rng.random() < 0.6 else _random_leaf(rng))


def _small_polynomial(rng: random.Random) -> sympy.Expr:
    """The inside of a composition: degree 3 at most, small coefficients (sin(11x^7 + ...) cannot be drawn)."""
    degree = rng.randint(1, 3)
    return sympy.Add(_nonzero(rng, -3, 3) * X**degree, *[_nonzero(rng, -5, 5) * X**p for p in range(degree)
                                                        if rng.random() < 0.5])


def _random_advanced(rng: random.Random) -> sympy.Expr:
    kind = rng.choice(["nested", "triple", "rational", "mixed"])
    if kind == "nested":
        outer = rng.choice([sympy.sin, sympy.cos, sympy.exp, sympy.sqrt, sympy.log, sympy.atan, sympy.tan])
        return outer(_random_application(rng) if rng.random() < 0.5 else _random_conceptual(rng))
    if kind == "triple":
        return _random_leaf(rng) * _random_leaf(rng) * _random_leaf(rng)
    if kind == "rational":
        roots = rng.sample(range(-4, 5), rng.randint(1, 3))
        denominator = sympy.Mul(*[X - r for r in roots])
        if rng.random() < 0.5:
            denominator = sympy.expand(denominator)
        return _random_polynomial(rng) / denominator
    return _random_application(rng) * _random_leaf(rng) / (X - rng.choice([-3, -2, -1, 1, 2, 3]))


RANDOM_TREES = {"foundation": _random_polynomial, "conceptual": _random_conceptual,
                "application": _random_application, "advanced": _random_advanced}


def grow_catalog(catalog: dict[str, list[str]], sizes: dict[str, int], seed: int,
                 on_progress: Callable[[int], None] | None = None) -> dict[str, list[str]]:
    """`catalog` with each level cut or grown to `sizes[level]`: cut by a seeded sample, grown by random trees
    that pass verification and are equivalent to nothing already present (in any level)."""
    kept = FunctionSet()
    for texts in catalog.values():
        for text in texts:
            kept.add(parse_function(text).expr)
    grown = {}
    for level in LEVELS:
        texts, want = list(catalog[level]), sizes[level]
        if want <= len(texts):
            rng = random.Random(f"cut-{seed}-{level}")
            grown[level] = [texts[i] for i in sorted(rng.sample(range(len(texts)), want))]
            continue
        rng = random.Random(f"grow-{seed}-{level}")
        draw = RANDOM_TREES[level]
        while len(texts) < want:
            text = accept(sympy.sympify(draw(rng)), kept, level)
            if text is not None:
                texts.append(text)
                if on_progress is not None:
                    on_progress(1)
        grown[level] = texts
    return grown


# ----------------------------------------------------------------------------- instructions

# The paper's seven formats and how often each occurs in the original corpus, all 525 rows together (measured on
# its hf_*.jsonl; the reference README's 82 for "Build an animated ..." is one short).
PAPER_FORMATS = {
    "Build an animated derivative visualization for: f(x) = {f}": 83,
    "Construct Manim code that illustrates the derivative of: f(x) = {f}": 83,
    "Produce a derivative visualization animation for the function: f(x) = {f}": 79,
    "Create a Manim animation showing the derivative calculation for the function: f(x) = {f}": 73,
    "Write a complete Manim scene that demonstrates the derivative of: f(x) = {f}": 73,
    "Generate Manim code to visualize the derivative of: f(x) = {f}": 70,
    "Develop Manim code showing derivative calculation steps for: f(x) = {f}": 64,
}
STANDARD_FORMAT = "Construct Manim code that illustrates the derivative of: f(x) = {f}"  # the ablation's one format

# Natural phrasings nobody has written down yet. {f} is the function in the letter {var}; {name} its name;
# [{a}, {b}] the window the request asks for. Grouped by what they make the model cope with.
PARAPHRASES = {
    "interval": [
        "Animate the derivative of {name}({var}) = {f} on [{a}, {b}]",
        "Visualize the derivative of {name}({var}) = {f} over the interval [{a}, {b}].",
        "Show how the slope of {f} changes for {var} in [{a}, {b}]",
        "Make a Manim animation of the tangent line to {name}({var}) = {f}, with {var} from {a} to {b}",
        "Plot {f} on [{a}, {b}] and explain its derivative with a moving tangent line",
    ],
    "rename": [
        "Explain the derivative of {name}({var}) = {f} with an animation",
        "I need a video that differentiates {name}({var}) = {f} step by step",
        "Draw {name}({var}) = {f} and animate its derivative",
        "Derivative of {name}({var}) = {f}, animated please",
    ],
    "bare": [
        "Differentiate {f} and animate it",
        "Show me the derivative of {f}",
        "How does the derivative of {f} look? Make an animation",
        "Teach the derivative of {f} with a Manim scene",
        "animate d/d{var} of {f}",
    ],
    "wordy": [
        "Hi! For my calculus class tomorrow, could you please create a Manim animation explaining the derivative "
        "of {name}({var}) = {f}? Thanks a lot.",
        "My students struggle with derivatives. Please build a clear, step-by-step visualization for {f}, "
        "with the secant turning into the tangent and the graph of the derivative.",
        "Quick request: derivative animation, function {name}({var}) = {f}, nothing fancy, just the usual phases.",
        "I am revising for an exam and the chain of rules confuses me. Can you animate how to differentiate "
        "{f}, one rule at a time?",
    ],
}
PARAPHRASE_SHARE = Fraction(1, 2)  # of rows in --instructions paraphrase; the rest keep the paper's formats
OTHER_NAMES = ("g", "h", "p", "q", "y")
OTHER_VARIABLES = ("t", "u", "s", "z", "w")
INSTRUCTION_MODES = ("paper", "standard", "paraphrase")


def apportion(weights: dict[str, int | Fraction], total: int) -> dict[str, int]:
    """Split `total` in proportion to `weights`: floors, then the largest remainders (ties in key order)."""
    whole = sum(weights.values())
    shares = {key: Fraction(weight) * total / whole for key, weight in weights.items()}
    counts = {key: int(share) for key, share in shares.items()}
    by_remainder = sorted(shares, key=lambda key: -(shares[key] - counts[key]))  # stable: key order breaks ties
    for key in by_remainder[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def format_kind(instruction_format: str) -> str:
    """'paper', or which paraphrase group a format belongs to."""
    return next((kind for kind, formats in PARAPHRASES.items() if instruction_format in formats), "paper")


def instruction_formats(mode: str, total: int, seed: int) -> list[str]:
    """One format per row, in the proportions the mode asks for, shuffled with the seed."""
    if mode not in INSTRUCTION_MODES:
        raise ValueError(f"instructions must be one of {', '.join(INSTRUCTION_MODES)}, not {mode!r}")
    if mode == "standard":
        return [STANDARD_FORMAT] * total
    if mode == "paper":
        counts = apportion(PAPER_FORMATS, total)
    else:  # first the share of each group, then the formats within it, so each group gets its share exactly
        groups = apportion({"paper": 1 - PARAPHRASE_SHARE, **{kind: PARAPHRASE_SHARE / len(PARAPHRASES)
                                                             for kind in PARAPHRASES}}, total)
        counts = apportion(PAPER_FORMATS, groups["paper"])
        for kind, formats in PARAPHRASES.items():
            counts.update(apportion(dict.fromkeys(formats, 1), groups[kind]))
    formats = [fmt for fmt, count in counts.items() for _ in range(count)]
    random.Random(f"formats-{seed}-{mode}").shuffle(formats)
    return formats
