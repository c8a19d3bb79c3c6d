"""Recall-first pneumonia detection on pediatric chest X-rays."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
