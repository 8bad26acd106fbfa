"""Where the data files (templates, grammars, the function catalog) live: inside the wheel, or beside the package."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """A data file shipped inside the wheel (derivanim/<parts>) or, in a source checkout, at the repository root."""
    for root in (_PACKAGE, _PACKAGE.parent):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"derivanim data file missing: {'/'.join(parts)}")
