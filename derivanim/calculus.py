"""The mathematics: derivatives, simplification within a bound on work, and what a function looks like on a window.

Everything numerical here samples the SymPy expression through numpy on a dense grid; the grid is what the
plots are made of too, so what is checked is what is drawn.
"""

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy
from sympy.printing.numpy import NumPyPrinter

from derivanim.grammar import notation
from derivanim.steps import textbook_latex

SAMPLES = 1201  # grid points across a window
SHORT_ENOUGH = 1  # operations below which simplify() has nothing to gain
# What SymPy may be asked to rewrite, in work rather than seconds, so that f' is the same on any machine and thread.
# The corpus needs at most 24 of each. Past them SymPy takes seconds: ((x + 1)^10 + 1)^10's f' multiplies out to 101
# terms (cancel: 5 s); simplify() took 1.8 s on x(e^(x/pi)(|x| - sinh(x)))^5's f', with 36 operations.
EXPANSION_BUDGET = 40  # terms f' may have once multiplied out over one denominator (expanded_terms)
SIMPLIFY_BUDGET = 30  # operations (count_ops) in f' up to which simplify() is tried


def _polynomial_size(expr: sympy.Expr) -> tuple[int, int, frozenset]:
    """Upper bounds for `expr` multiplied out over one denominator: its terms (sums multiplied out term by term),
    its degree, and its generators (the variable, and each call or fractional power, as sin(x) or sqrt(x + 1))."""
    if not expr.free_symbols:
        return 1, 0, frozenset()
    if expr.is_Add:  # over one denominator: every numerator times the other denominators
        parts = [sympy.fraction(term) for term in expr.args]
        tops = [_polynomial_size(top) for top, _ in parts]
        bottoms = [_polynomial_size(bottom) for bottom in {bottom for _, bottom in parts}]
        return (sum(t for t, _, _ in tops) * math.prod(t for t, _, _ in bottoms),
                max(d for _, d, _ in tops) + sum(d for _, d, _ in bottoms),
                frozenset().union(*(g for _, _, g in tops + bottoms)))
    if expr.is_Mul:
        sizes = [_polynomial_size(arg) for arg in expr.args]
        return (math.prod(t for t, _, _ in sizes), sum(d for _, d, _ in sizes),
                frozenset().union(*(g for _, _, g in sizes)))
    if expr.is_Pow and expr.exp.is_Integer:  # a negative power is a positive one in the denominator
        terms, degree, generators = _polynomial_size(expr.base)
        power = abs(int(expr.exp))
        return math.comb(power + terms - 1, power), power * degree, generators
    return 1, 1, frozenset([expr])


def expanded_terms(expr: sympy.Expr) -> int:
    """How many terms `expr` could have once multiplied out over one denominator, as cancel, expand, factor and
    simplify do: the smaller of two bounds (sums multiplied out term by term; the monomials of its degree in its
    generators), at the largest place in `expr`. SymPy works inside calls too, and splits a call of a sum of k terms
    into up to 2^k products (sin(a + b) = sin(a)cos(b) + cos(a)sin(b)): a call counts 2^k."""
    def bound(node: sympy.Expr) -> int:
        terms, degree, generators = _polynomial_size(node)
        return min(terms, math.comb(degree + len(generators), len(generators)))

    def work(node: sympy.Expr) -> int:
        if node.is_Function or (node.is_Pow and not node.exp.is_Integer):
            return 2 ** max(bound(arg) for arg in node.args)
        return bound(node)

    return max(work(node) for node in sympy.preorder_traversal(expr))


def simplest(expr: sympy.Expr, shapes: tuple[sympy.Expr, ...] = ()) -> sympy.Expr:
    """The form of `expr` a textbook prints: the most readable (readability()) of factored, over one denominator
    with the top expanded and the bottom factored, cancelled, simplified, and `shapes` (the derivation's own
    forms), never longer than `expr`. Forms that multiply out are tried only within EXPANSION_BUDGET, simplify()
    only within SIMPLIFY_BUDGET: a bound on work, not time, so the answer does not depend on the machine."""
    candidates = [expr, *(shape.doit() for shape in shapes)]  # as SymPy writes them: no sum inside a sum
    try:
        candidates.append(sympy.factor_terms(expr))
        together = sympy.together(expr)
        candidates.append(together)
        if expanded_terms(together) <= EXPANSION_BUDGET:
            numerator, denominator = sympy.fraction(sympy.cancel(together))
            candidates += [sympy.expand(numerator) / sympy.factor(denominator), numerator / denominator,
                           sympy.factor(expr)]
            if SHORT_ENOUGH < sympy.count_ops(expr) <= SIMPLIFY_BUDGET:
                candidates.append(sympy.simplify(expr))
    except (RecursionError, NotImplementedError, ValueError, TypeError, sympy.PolynomialError):
        pass
    # simplify can say "0, but zoo at x = 0" (a Piecewise holding zoo), which no plot or printer can use.
    candidates = [e for e in candidates if e is expr or (not e.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
                                                          and _writable(e))]
    longest = latex_length(expr)
    # Between forms that read alike, one term over several: -x^2/(x^2 + 1) rather than -1 + 1/(x^2 + 1).
    return min((e for e in candidates if latex_length(e) <= longest),
               key=lambda e: (readability(e), len(sympy.Add.make_args(e))))


def _writable(expr: sympy.Expr) -> bool:
    """Whether the grammar's notation can write `expr` (a Piecewise from simplify, say, it cannot)."""
    try:
        notation(expr)
    except ValueError:
        return False
    return True


FRACTION_IN_FRACTION = 6  # what a fraction inside a fraction costs, in characters: (2x - (x^2+1)/(x-1))/(x-1)
REPEAT = 4  # what each repeat of a sub-expression costs: x^2 e^x + 2x e^x says e^x twice
EXPANDED_BELOW = 4  # what a denominator that hides its factors costs: x^4 + 2x^2 + 1 for (x^2 + 1)^2


def latex_length(expr: sympy.Expr) -> int:
    """How much a reader reads: the characters of the textbook LaTeX, less its braces, spaces and sizing."""
    return len(re.sub(r"\\(left|right|operatorname)|[{}\s\\]", "", textbook_latex(expr)))


def _below(factor: sympy.Expr) -> bool:
    return factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative


def _fraction_depth(expr: sympy.Expr) -> int:
    """How deep fractions nest: 1 for (x^2 - 2x - 1)/(x - 1)^2, 2 for (2x - (x^2 + 1)/(x - 1))/(x - 1)."""
    if expr.is_Atom:
        return int(expr.is_Rational and not expr.is_Integer)
    factors = sympy.Mul.make_args(expr) if expr.is_Mul or _below(expr) else ()
    if any(_below(f) for f in factors):
        parts = [1 / f if _below(f) else f for f in factors]
        return 1 + max(_fraction_depth(part) for part in parts)
    return max(_fraction_depth(arg) for arg in expr.args)


def _repeats(expr: sympy.Expr) -> int:
    """How many times sub-expressions appear again: sums, calls, powers of those (x - 1, e^x), not the small words
    of any formula (x, 2, x^2, 2x)."""
    def small(node: sympy.Expr) -> bool:
        return all(arg.is_Atom for arg in node.args) and (node.is_Pow or node.is_Mul)

    counts = Counter(node for node in sympy.preorder_traversal(expr) if not node.is_Atom and not small(node))
    return sum(count - 1 for node, count in counts.items() if count > 1 and not (node.is_Mul and node.args[0] == -1))


def _expanded_denominators(expr: sympy.Expr) -> int:
    """Denominators written as an expanded polynomial that has factors: x^4 + 2x^2 + 1."""
    bottoms = {1 / node for node in sympy.preorder_traversal(expr) if _below(node)}
    return sum(bottom.is_Add and bottom.is_polynomial() and sympy.factor(bottom) != bottom for bottom in bottoms)


def readability(expr: sympy.Expr) -> float:
    """Lower reads better: the length of the LaTeX, plus what nested fractions, repeated sub-expressions and
    denominators with hidden factors cost the reader."""
    return (latex_length(expr) + FRACTION_IN_FRACTION * max(0, _fraction_depth(expr) - 1)
            + REPEAT * _repeats(expr) + EXPANDED_BELOW * _expanded_denominators(expr))


def derivative(expr: sympy.Expr, var: sympy.Symbol) -> sympy.Expr:
    """f' as SymPy gives it, except that |u| of a u SymPy cannot prove real (abs(ln(x))) is differentiated as on
    f's real domain, where |u| = sqrt(u^2): SymPy's own answer holds re(u), im(u) and unevaluated derivatives that
    no plot can use."""
    if not expr.has(sympy.Abs):
        return sympy.diff(expr, var)
    result = sympy.diff(expr.replace(sympy.Abs, lambda u: sympy.sqrt(u ** 2)), var)
    return result.replace(lambda e: e.is_Pow and e.exp == sympy.S.Half and e.base.is_Pow and e.base.exp == 2,
                          lambda e: sympy.Abs(e.base.base))


def numpy_source(expr: sympy.Expr) -> str:
    """Python source of `expr` using `numpy.` functions, for the generated scene."""
    return NumPyPrinter().doprint(expr)


@lru_cache(maxsize=512)
def _compiled(expr: sympy.Expr, var: sympy.Symbol):
    # lambdify prints SymPy's own expression tree (never user text) to numpy source and compiles that.
    return sympy.lambdify(var, expr, modules="numpy")


def evaluator(expr: sympy.Expr, var: sympy.Symbol):
    """A numpy function of an array; NaN wherever the value is not a finite real number."""
    compiled = _compiled(expr, var)

    def evaluate(xs):
        xs = np.asarray(xs, dtype=float)
        with np.errstate(all="ignore"):
            ys = np.asarray(compiled(xs))
        ys = np.broadcast_to(ys, xs.shape)
        if np.iscomplexobj(ys):
            ys = np.where(np.abs(ys.imag) < 1e-12, ys.real, np.nan)
        return np.where(np.isfinite(ys), ys, np.nan).astype(float)

    return evaluate


@dataclass(frozen=True)
class Curve:
    """How a function is drawn on a window: its y-range and the pieces where it is finite, real and in range."""

    y_min: float
    y_max: float
    segments: tuple[tuple[float, float], ...]
    breaks: tuple[float, ...]  # poles and jumps inside the window


def nice_step(span: float, target_ticks: int = 6) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about `target_ticks` ticks."""
    raw = max(span, 1e-9) / target_ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def robust_range(values: np.ndarray) -> tuple[float, float]:
    """A y-range that shows the body of the curve; values running off to a pole do not flatten it."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -1.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    q_low, q_high = np.percentile(finite, [10, 90])
    spread = max(q_high - q_low, 1e-9)
    low, high = max(low, q_low - spread), min(high, q_high + spread)
    if high - low < 1e-6:  # flat: a band around it, wide enough to tell apart from it at any size (e^49: 1.9e21)
        pad = max(1.0, 0.1 * max(abs(low), abs(high)))
        return low - pad, high + pad
    # Show the x-axis when the curve comes close to it; otherwise leave a margin around the curve.
    margin = 0.08 * (high - low)
    low = 0.0 if 0 <= low < 0.35 * (high - low) else low - margin
    high = 0.0 if 0 >= high > -0.35 * (high - low) else high + margin
    return low, high


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [start, stop] of the True runs in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def bisect_edge(evaluate, inside: float, outside: float, ok, steps: int = 30) -> float:
    """Bisect between a point where `ok` holds and one where it fails, returning the last point where it holds."""
    for _ in range(steps):
        middle = (inside + outside) / 2
        if ok(evaluate(np.array([middle]))[0]):
            inside = middle
        else:
            outside = middle
    return inside


def trace_curve(evaluate, x_min: float, x_max: float, y_range: tuple[float, float] | None = None) -> Curve:
    """Sample f on the window, choose its y-range and split it where it leaves the range, the domain, or jumps."""
    xs = np.linspace(x_min, x_max, SAMPLES)
    ys = evaluate(xs)
    y_min, y_max = y_range if y_range is not None else robust_range(ys)
    span = y_max - y_min

    def ok(y):
        return np.isfinite(y) & (y >= y_min - 1e-9) & (y <= y_max + 1e-9)

    sliver = 2e-3 * (x_max - x_min)  # narrower pieces (one sample of sign(x) at 0) are not drawn
    segments = []
    for left, right in _pieces(evaluate, xs, ys, ok, span, sliver):
        # Poles may crowd closer than the grid (tan(ln(x)) near 0), and Manim would draw across them: a piece that
        # leaves the range between samples is split again on a grid across the piece alone, once; a part that
        # still leaves it is dropped (near tan(ln(x))'s 0 such parts are narrower than slivers anyway).
        fine = np.linspace(left, right, SAMPLES)
        fine_ys = evaluate(fine)
        if np.all(ok(fine_ys)):
            segments.append((left, right))
        else:
            segments += [(a, b) for a, b in _pieces(evaluate, fine, fine_ys, ok, span, sliver)
                         if np.all(ok(evaluate(np.linspace(a, b, SAMPLES))))]
    breaks = [
        (right + left) / 2
        for (_, right), (left, _) in zip(segments, segments[1:])
        if _discontinuous(evaluate(np.linspace(right, left, 2001)), span)
    ]
    return Curve(y_min=float(y_min), y_max=float(y_max), segments=tuple(segments), breaks=tuple(breaks))


def _pieces(evaluate, xs: np.ndarray, ys: np.ndarray, ok, span: float, sliver: float) -> list[tuple[float, float]]:
    """The x-intervals of a sampled curve inside the range and domain, without jumps, wider than `sliver`."""
    valid = ok(ys)
    # A jump: neighbours a quarter of the plot's height apart, which no continuous curve does at this spacing.
    jump_after = valid[:-1] & valid[1:] & (np.abs(np.diff(ys)) > 0.25 * span)
    pieces = []
    for start, stop in runs(valid):
        cuts = [int(j) for j in np.flatnonzero(jump_after[start:stop]) + start]
        pieces += zip([start] + [c + 1 for c in cuts], cuts + [stop])
    last = len(xs) - 1
    segments = []
    for start, stop in pieces:
        # Refine an edge by bisection where the curve leaves the range or domain; a jump edge is a sample.
        left = xs[start] if start == 0 or valid[start - 1] else bisect_edge(evaluate, xs[start], xs[start - 1], ok)
        right = xs[stop] if stop == last or valid[stop + 1] else bisect_edge(evaluate, xs[stop], xs[stop + 1], ok)
        if right - left > sliver:
            segments.append((float(left), float(right)))
    return segments


def _discontinuous(ys: np.ndarray, span: float) -> bool:
    """Whether samples across the gap between two pieces hold a pole, a hole in the domain or a jump (not just a
    tall hump)."""
    undefined_or_pole = not np.all(np.isfinite(ys)) or np.max(np.abs(ys)) > 100 * max(span, 1.0)
    return bool(undefined_or_pole or abs(ys[-1] - ys[0]) > 0.25 * span)
