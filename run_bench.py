"""Benchmark 2-D local attention: `python run_bench.py [sweep|list|plot|report|gate|fidelity|models] ...` (sweep is the default)."""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
