"""Tests of corpora, noise and room banks, content checks."""
