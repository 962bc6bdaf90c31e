"""imgctl: a daemonless image store manager."""

__version__ = "0.1.0"
__all__ = ["__version__"]
