"""How the harness measures: search timing, per-query hit levels and their aggregation, speedup.

The definitions behind every reported number (docs/protocol.md). It may import ``datasets`` and
``methods.base``; of ``bench`` nothing. Every other part of ``bench`` may import it.
"""
