"""The built-in encoder: a NAFP-style convolutional model over log-mel frames, its front end and checkpoints."""
