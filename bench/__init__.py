"""FlowHash bench: the harness (CLI, runner, timing, metrics, reports)."""

__version__ = "0.1.0"
