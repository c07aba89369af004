"""Built-in tasks with a known reward, used by the demo and the benchmarks."""
