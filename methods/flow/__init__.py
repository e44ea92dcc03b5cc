"""FlowHash's normalizing flow: the nflows model and its training losses, and NumPy inference.

It imports neither ``methods.base`` nor any method; only ``methods.flowhash`` imports it.
"""
