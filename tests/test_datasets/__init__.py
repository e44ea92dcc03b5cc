"""Tests of corpora, noise and room banks, degradation, query sets, content checks."""
