"""A sweep on a Dask cluster (a local one: scheduler and two worker processes on this
machine) gives the same table as the same sweep run in this process."""

from __future__ import annotations

import pandas as pd
from distributed import Client, LocalCluster, get_task_stream

from cqrs_lab.sim import builtin_scenario
from cqrs_lab.sim.sweep import sweep


def test_a_sweep_on_a_dask_cluster_equals_the_local_one() -> None:
    s = builtin_scenario().with_(duration=1.0, reads=None, slos=())
    grid = {"commands.handlers": [1, 3]}
    metrics = ("latency_p99_s", "commands")
    local = sweep(s, grid, replications=2, metrics=metrics, n_jobs=1, progress=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as tasks,
    ):
        on_cluster = sweep(
            s, grid, replications=2, metrics=metrics, n_jobs=2, backend="dask", progress=False
        )
        workers = set(client.scheduler_info()["workers"])
    # the four runs (2 grid points x 2 replications) went to the cluster's workers
    assert len(tasks.data) >= 4
    assert {t["worker"] for t in tasks.data} <= workers and len(workers) == 2
    pd.testing.assert_frame_equal(on_cluster, local)
