"""Tests of the fingerprint encoder: front end, training, checkpoints, embedding cache."""
