"""Tests of search methods: the conformance test over every registered method, each method's own checks, plugins."""
