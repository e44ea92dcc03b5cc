"""Tests of the harness end to end: bench run, reports, the regression check."""
