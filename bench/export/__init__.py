"""Taking a run's data elsewhere: the audio an outside encoder embeds (``bench export-audio``), and a
run's vectors with exact neighbours in ann-benchmarks' HDF5 or VectorDBBench's Parquet layout
(``bench export``).

May import bench.measure and bench.run (and datasets, encoders, methods); a peer of bench.report
and bench.regress, imported by bench.cli only.
"""
