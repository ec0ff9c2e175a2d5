"""Benchmark 2-D local attention: `python run_bench.py [sweep|list|plot|report|gate|fidelity|models] ...` (sweep is the default)."""

from bench.entry import main, run

__all__ = ["main"]  # tests call run_bench.main(argv), which returns the exit status

if __name__ == "__main__":
    run()
