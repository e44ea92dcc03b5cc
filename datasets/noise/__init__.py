"""Noise banks: the ``NoiseBank`` base class, synthetic, folder and Debian-ambience banks, and ``registry``.

A bank holds split clips that query sets and encoder training mix in. ``registry.open_noise_bank``
is the one module that knows every bank; no bank imports it. It may import the shared modules of
``datasets`` and ``datasets.corpora.corpus``; never ``datasets.queries``, which may import it.
"""
