"""factorbench: benchmarking and numerical-accuracy harness for dense factorizations."""

__version__ = "0.1.0"
__all__ = ["__version__"]
