"""`make bench`: measured throughput, model quality and latency, written to reports/<area>.json and .md."""
