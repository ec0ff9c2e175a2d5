"""Measure one case: correctness against the oracle, timing, memory, roofline, and failure classes."""
