"""The built-in encoders: the NAFP-style convolutional model over log-mel frames (nafp.py), their
shared log-mel front end, and the checkpoint format that stores and runs them."""
