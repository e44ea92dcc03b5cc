"""``python -m bench``: the argument parser (``main``) and one module per subcommand.

The top of the project: it may import everything; nothing imports it but ``bench.__main__``.
Shared option helpers live in ``options``.
"""
