"""The fingerprint encoder: audio front end, NAFP-style model, training, checkpoints, embedding cache."""
