"""derivanim: verified, template-filled Manim animations that explain a derivative."""

__version__ = "0.1.0"

from derivanim.api import Animation, fill  # noqa: E402  (the version must exist before the API imports it)
from derivanim.errors import DerivanimError, InvalidInput  # noqa: E402

__all__ = ["Animation", "fill", "DerivanimError", "InvalidInput", "__version__"]
