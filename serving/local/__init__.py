"""Local servers for tests and benchmarks: the BentoML server, a Redis of our own, closed-loop load."""
