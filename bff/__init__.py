"""bff: a backend-for-frontend that keeps OAuth tokens out of the browser."""

__all__ = ["__version__"]

__version__ = "0.1.0"
