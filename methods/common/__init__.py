"""Machinery shared by several methods: the hash table with its probes, bucket balance, PCA
projection, and the faiss method base.

It may import ``methods.base``; never a method module or the registry.
"""
