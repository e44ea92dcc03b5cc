"""Audio data of a benchmark: corpora, noise, room responses, degraded query sets.

The bottom of the one-way flow datasets -> encoders -> methods -> bench: it imports no other part
of the project, and knows nothing of encoders, methods or the harness. Its parts:

- modules here are the shared ground: ``protocol`` (rates, segments, hop), ``splits``,
  ``audio_io``, ``cache`` (the on-disk cache and atomic writes), ``dedup`` (content
  fingerprints); ``rooms`` (room impulse response banks) and ``overlap`` (the cross-split
  content check over tracks, noise and rooms);
- ``corpora/``: music tracks and their train/val/test splits;
- ``noise/``: noise banks (synthetic, folders, Debian ambience) and their registry;
- ``queries/``: query conditions, degradation, the query-set builder, matching to the DB grid.

``corpora`` and ``noise`` import only the shared ground (and the corpus base classes);
``queries`` and ``overlap`` may import every other part.
"""
