"""Scaling runs: the DB grows by distractors over a grid of sizes while the query set stays fixed.

May import bench.measure and bench.run (and datasets, encoders, methods); bench.report and
bench.cli may import it; it must never import them.
"""
