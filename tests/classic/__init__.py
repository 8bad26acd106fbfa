"""The classic-function suite (functions.toml): textbook functions by category, with the features a teacher
would point at.

It is test data, so it lives beside the tests and stays out of the wheel. From a test:
`from classic import load_suite` (pytest puts tests/ on sys.path); from a script run at the repository root
(or with it on sys.path): `from tests.classic import load_suite`.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SUITE = Path(__file__).with_name("functions.toml")
FEATURE_KINDS = ("max", "min", "inflection", "pole", "hole", "jump", "edge", "corner", "vertical", "oscillates")


@dataclass(frozen=True)
class ClassicFunction:
    text: str  # as a person types it, in the project's grammar
    category: str
    features: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> x positions, in the grammar
    note: str = ""

    def feature_positions(self) -> dict[str, list[float]]:
        """The features' x positions as numbers (read by the project's grammar, evaluated by SymPy)."""
        from derivanim.grammar import parse_function

        return {kind: [float(parse_function(x).expr.evalf()) for x in xs] for kind, xs in self.features.items()}


def load_suite(path: Path = SUITE) -> list[ClassicFunction]:
    """Every function of the suite, in file order."""
    with open(path, "rb") as stream:
        tables = tomllib.load(stream)
    suite = []
    for category, table in tables.items():
        for entry in table["functions"]:
            unknown = set(entry) - {"f", "note", *FEATURE_KINDS}
            if unknown:
                raise ValueError(f"{path}: {entry['f']!r} has unknown keys {sorted(unknown)}")
            features = {kind: tuple(entry[kind]) for kind in FEATURE_KINDS if kind in entry}
            suite.append(ClassicFunction(entry["f"], category, features, entry.get("note", "")))
    return suite
