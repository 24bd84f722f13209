"""p2t: translate Python function bodies into fast, verified Triton kernels."""

__version__ = "0.1.0"

from p2t_core.hookspecs import hookimpl  # noqa: E402  (plugins import it from here)

__all__ = ["__version__", "hookimpl"]
