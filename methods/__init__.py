"""Search methods behind one interface (``methods.base.Method``) and a registry.

``get_method(name, **build_params)`` makes one; ``method_names()`` lists them;
``load_grid(name)`` reads its build grid and query sweep from ``methods/<name>.yml``.
"""
from methods.base import Method, SearchResult, TrainData
from methods.registry import METHODS, get_method, load_grid, method_class, method_names, register

__all__ = ["METHODS", "Method", "SearchResult", "TrainData", "get_method", "load_grid",
           "method_class", "method_names", "register"]
