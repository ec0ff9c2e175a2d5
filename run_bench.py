"""Benchmark 2-D local attention: `python run_bench.py [command] ...`, sweep by default (`--help` lists the commands)."""

from bench.entry import main, run

__all__ = ["main"]  # tests call run_bench.main(argv), which returns the exit status

if __name__ == "__main__":
    run()
