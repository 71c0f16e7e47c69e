"""Speed and cost measurements; `python -m benchmarks` runs them all."""
