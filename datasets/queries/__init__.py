"""Query sets: conditions (SNR, reverb, duration labels), degradation, the builder, and DB-grid matching.

It may import every other part of ``datasets``; none of them may import it.
"""
