"""``make bench``: the workloads of the benchmark spec, the lab beside its peers, in one run."""
