"""`python -m bench`: throughput, latency and memory of the pipeline on this machine.

See docs/benchmarks.md for what each row measures and the latest figures.
"""
