"""A rule-by-rule derivation of f, written the way a calculus textbook writes it.

The animation's "Derivation" phase shows these steps one line at a time. Each step names the rule
it applies and states d/dx of one sub-expression in the rule's own shape (u'v + uv', f'(g) · g', ...),
outermost rule first, then the parts that rule needs, depth-first in reading order. Sub-derivatives
come from sympy.diff; the rule's shape is kept with unevaluated Add/Mul and LaTeX built from the
pieces, because SymPy's printer would re-sort the terms. Nothing here simplifies, so it stays fast.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import sympy


@dataclass(frozen=True)
class Step:
    """One line of the derivation: d/dvar of `expression` by `rule`."""

    rule: str
    expression: sympy.Expr
    derivative: sympy.Expr  # in the rule's shape; equals sympy.diff(expression, var)
    latex: str  # one MathTex line: \frac{d}{dx}\left[u\right] = u'
    depth: int  # 0 for the whole function, 1 for its parts, ...
    note: str = ""


@dataclass(frozen=True)
class _Shown:
    """A derivative in the shape its rule writes it, with the LaTeX of that shape."""

    expr: sympy.Expr
    tex: str


@dataclass(frozen=True)
class _Rule:
    """What a rule says about u: its name, u' in its shape, and the parts whose derivatives it used."""

    name: str
    derivative: _Shown
    parts: tuple[sympy.Expr, ...] = ()
    note: str = ""


def textbook_latex(expr: sympy.Expr) -> str:
    """Textbook notation: ln, arcsin."""
    return sympy.latex(expr, ln_notation=True, inv_trig_style="full")


def _shown(expr: sympy.Expr) -> _Shown:
    return _Shown(expr, textbook_latex(expr))


def _grouped(shown: _Shown) -> str:
    return rf"\left({shown.tex}\right)"


def _plus(terms: list[sympy.Expr]) -> _Shown:
    """t1 + t2 + ... in the given order, a zero term left out; sums inside a sum get parentheses."""
    terms = [term for term in terms if term != 0]
    if len(terms) <= 1:
        return _shown(terms[0] if terms else sympy.S.Zero)
    pieces = []
    for i, term in enumerate(terms):
        negative = term.could_extract_minus_sign()
        body = _shown(-term if negative else term)
        sign = "- " if negative else "+ " if i else ""
        pieces.append(sign + (_grouped(body) if body.expr.is_Add else body.tex))
    return _Shown(sympy.Add(*terms, evaluate=False), " ".join(pieces))


def _times(factors: list[_Shown]) -> _Shown:
    """f1 · f2 · ... in the given order, factors of 1 left out; sums and later negatives get parentheses."""
    if any(f.expr == 0 for f in factors):
        return _shown(sympy.S.Zero)
    factors = [f for f in factors if f.expr != 1]
    if len(factors) <= 1:
        return factors[0] if factors else _shown(sympy.S.One)
    pieces = [
        _grouped(f) if f.expr.is_Add or (i and f.expr.could_extract_minus_sign()) else f.tex
        for i, f in enumerate(factors)
    ]
    return _Shown(sympy.Mul(*(f.expr for f in factors), evaluate=False), r" \cdot ".join(pieces))


def _prime(part: sympy.Expr, var: sympy.Symbol) -> sympy.Expr:
    """part' as part's own line states it, tidied, so the parent line matches the lines below it."""
    return _rule(part, var).derivative.expr.doit()


def _chained(name: str, outer_at_inner: sympy.Expr, inner: sympy.Expr, var: sympy.Symbol, note: str = "") -> _Rule:
    """f(g)' = f'(g) · g'; for a bare f(x) that is just f's own rule."""
    if inner == var:
        return _Rule(name, _shown(outer_at_inner), note=note)
    note = "; ".join(filter(None, [f"outer function: {name}", note]))
    return _Rule("chain rule", _times([_shown(outer_at_inner), _shown(_prime(inner, var))]), (inner,), note)


# f'(g) for each function of the grammar, by SymPy class; exp and the powers are handled with Pow.
_OUTER: dict[type, tuple[str, Callable[[sympy.Expr], sympy.Expr]]] = {
    sympy.exp: ("exponential rule", sympy.exp),
    sympy.log: ("logarithm rule", lambda g: 1 / g),
    sympy.sin: ("trigonometric rule", sympy.cos),
    sympy.cos: ("trigonometric rule", lambda g: -sympy.sin(g)),
    sympy.tan: ("trigonometric rule", lambda g: sympy.sec(g) ** 2),
    sympy.sec: ("trigonometric rule", lambda g: sympy.sec(g) * sympy.tan(g)),
    sympy.csc: ("trigonometric rule", lambda g: -sympy.csc(g) * sympy.cot(g)),
    sympy.cot: ("trigonometric rule", lambda g: -sympy.csc(g) ** 2),
    sympy.asin: ("inverse trigonometric rule", lambda g: 1 / sympy.sqrt(1 - g**2)),
    sympy.acos: ("inverse trigonometric rule", lambda g: -1 / sympy.sqrt(1 - g**2)),
    sympy.atan: ("inverse trigonometric rule", lambda g: 1 / (1 + g**2)),
    sympy.sinh: ("hyperbolic rule", sympy.cosh),
    sympy.cosh: ("hyperbolic rule", sympy.sinh),
    sympy.tanh: ("hyperbolic rule", lambda g: sympy.sech(g) ** 2),
    sympy.asinh: ("hyperbolic rule", lambda g: 1 / sympy.sqrt(g**2 + 1)),
    sympy.acosh: ("hyperbolic rule", lambda g: 1 / sympy.sqrt(g**2 - 1)),
    sympy.atanh: ("hyperbolic rule", lambda g: 1 / (1 - g**2)),
    sympy.Abs: ("absolute value rule", lambda g: g / sympy.Abs(g)),
}


def _function_rule(u: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """sin(g), ln(g), |g|, ...: the table entry for the outer function, chained."""
    name, outer = _OUTER[u.func]
    inner = u.args[0]
    # The note is typeset as text: its mathematics goes in $...$ (a bare ^ is a LaTeX error there).
    note = f"not differentiable where ${textbook_latex(inner)} = 0$" if u.func is sympy.Abs else ""
    return _chained(name, outer(inner), inner, var, note)


def _sum_rule(u: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """(u + v)' = u' + v', terms in the order they are printed."""
    terms = u.as_ordered_terms()
    return _Rule("sum rule", _plus([_prime(term, var) for term in terms]), tuple(terms))


def _product_rule(factors: list[sympy.Expr], var: sympy.Symbol) -> _Rule:
    """(uvw)' = u'vw + uv'w + uvw': one term per factor, that factor differentiated."""
    terms = [sympy.Mul(*factors[:i], _prime(f, var), *factors[i + 1:]) for i, f in enumerate(factors)]
    return _Rule("product rule", _plus(terms), tuple(factors))


def _quotient_rule(numerator: sympy.Expr, denominator: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """(u/v)' = (u'v - uv')/v^2."""
    top = _plus([_prime(numerator, var) * denominator, -(numerator * _prime(denominator, var))])
    bottom = denominator**2
    shown = _Shown(sympy.Mul(top.expr, sympy.Pow(bottom, -1), evaluate=False), rf"\frac{{{top.tex}}}{{{textbook_latex(bottom)}}}")
    return _Rule("quotient rule", shown, (numerator, denominator))


def _is_reciprocal(factor: sympy.Expr) -> bool:
    """x^-2 or (x+1)^(-1/2): a factor SymPy prints below the fraction bar (exp(-x) stays on top)."""
    return factor.is_Pow and factor.exp.is_number and bool(factor.exp.is_extended_negative)


def _mul_rule(u: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """c·u, log_b(u) = ln(u)/ln(b), u/v or u·v·w, whichever the product is."""
    constant, rest = u.as_independent(var, as_Add=False)
    if rest.func is sympy.log and constant.is_Pow and constant.exp == -1 and constant.base.func is sympy.log:
        base, inner = constant.base.args[0], rest.args[0]
        return _chained("logarithm rule", 1 / (inner * sympy.log(base)), inner, var)
    if constant != 1:
        inner = _prime(rest, var)
        shown = _shown(-inner) if constant == -1 else _times([_shown(constant), _shown(inner)])
        return _Rule("constant multiple rule", shown, (rest,))
    factors = u.as_ordered_factors()
    below = [sympy.Pow(f.base, -f.exp) for f in factors if _is_reciprocal(f)]
    above = [f for f in factors if not _is_reciprocal(f)]
    if above and below:
        return _quotient_rule(sympy.Mul(*above), sympy.Mul(*below), var)
    return _product_rule(factors, var)


def _pow_rule(u: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """u^n (power rule), a^u (exponential rule), or u^v with both varying (logarithmic differentiation)."""
    base, exponent = u.args
    if not exponent.has(var):
        name = "square root rule" if exponent == sympy.S.Half else "power rule"
        outer = sympy.Mul(exponent, base ** (exponent - 1), evaluate=False)  # 2(x + 1), not 2x + 2
        return _chained(name, outer, base, var)
    if not base.has(var):
        return _chained("exponential rule", u * sympy.log(base), exponent, var)
    inside = _plus([_prime(exponent, var) * sympy.log(base), exponent * _prime(base, var) / base])
    note = rf"from $\ln y = {textbook_latex(exponent * sympy.log(base))}$"
    return _Rule("logarithmic differentiation", _times([_shown(u), inside]), (base, exponent), note)


@lru_cache(maxsize=2048)
def _rule(u: sympy.Expr, var: sympy.Symbol) -> _Rule:
    """The outermost rule that applies to u (cached: a parent's line needs its parts' derivatives too)."""
    if not u.has(var):
        return _Rule("constant rule", _shown(sympy.S.Zero))
    if u == var:
        return _Rule("identity rule", _shown(sympy.S.One))
    if u.is_Add:
        return _sum_rule(u, var)
    if u.is_Mul:
        return _mul_rule(u, var)
    if u.is_Pow:
        return _pow_rule(u, var)
    if u.func in _OUTER:
        return _function_rule(u, var)
    return _Rule("differentiation", _shown(sympy.diff(u, var)))  # a function outside the grammar: SymPy's answer


def _worth_a_line(part: sympy.Expr, parent: _Rule, var: sympy.Symbol) -> bool:
    """No line for what adds nothing: x itself, a·x + b inside a chain or a sum (read off at sight), or a last line
    that repeats its parent's right side, like x^2 after d/dx[x^2 + 1] = 2x. The u' and v' of a product or
    quotient always get their line (d/dx[x - 1] = 1), as a textbook lists them before using them."""
    rule = _rule(part, var)
    if part == var:
        return False
    if parent.name in ("product rule", "quotient rule"):
        return True
    if not rule.derivative.expr.has(var):
        return False
    return rule.derivative.tex != parent.derivative.tex or any(_worth_a_line(p, rule, var) for p in rule.parts)


def derivation_steps(expr: sympy.Expr, var: sympy.Symbol, max_steps: int = 12) -> list[Step]:
    """The derivation of d/dvar expr, outermost rule first, then its parts depth-first in reading order.

    When it is longer than `max_steps` lines, the shallowest lines are kept (all of depth 0 and 1
    before any of depth 2, ...), still in reading order.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    d_var = textbook_latex(var)
    steps: list[Step] = []

    def visit(u: sympy.Expr, depth: int) -> None:
        rule = _rule(u, var)
        line = rf"\frac{{d}}{{d{d_var}}}\left[{textbook_latex(u)}\right] = {rule.derivative.tex}"
        steps.append(Step(rule.name, u, rule.derivative.expr, line, depth, rule.note))
        for part in rule.parts:
            if _worth_a_line(part, rule, var):
                visit(part, depth + 1)

    visit(expr, 0)
    kept = sorted(sorted(range(len(steps)), key=lambda i: (steps[i].depth, i))[:max_steps])
    return [steps[i] for i in kept]
