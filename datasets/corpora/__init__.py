"""Music corpora: the ``Corpus`` base class, one module per corpus, and ``registry.open_corpus``.

A corpus lists tracks, reads their audio at the protocol's rate and assigns each a split. It may
import the shared modules of ``datasets`` (protocol, splits, audio_io, cache, dedup); never
``datasets.noise`` or ``datasets.queries``, which may import it.
"""
