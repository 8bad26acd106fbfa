"""derivanim: verified, template-filled Manim animations that explain a derivative."""

import importlib

__version__ = "0.1.0"

# The public names load their module on first use: `import derivanim.train` (a GPU machine with no Manim, a training
# run) does not import the render stage, and a CLI call imports only what its command needs.
_PUBLIC = {"Animation": "derivanim.api", "fill": "derivanim.api", "DerivanimError": "derivanim.errors",
           "InvalidInput": "derivanim.errors"}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'derivanim' has no attribute {name!r}")
