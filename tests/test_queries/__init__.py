"""Tests of the query sets: degradation, transforms, repeats, open-set queries, building and resuming."""
