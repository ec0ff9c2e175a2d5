"""Whole backbones built from the registry's attention: the model level of the benchmark (run_bench.py models)."""
