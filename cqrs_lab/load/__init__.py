"""Load tests against the real HTTP deployment, and the twin calibrated from them.

- :mod:`cqrs_lab.load.runner`: ``cqrs-lab loadtest`` end to end (server, Locust, faults),
  with its options checked first (:mod:`~cqrs_lab.load.options`);
- :mod:`cqrs_lab.load.records`: exact per-request latencies (s) and history from Locust;
- :mod:`cqrs_lab.load.results`: a results folder as pandas tables
  (:mod:`~cqrs_lab.load.requests_table`: each request and its outcome;
  :mod:`~cqrs_lab.load.staleness`: sessions' reads after their writes) and a summary
  (:mod:`~cqrs_lab.load.summary`; :mod:`~cqrs_lab.load.generator`: was it generator-bound);
- :mod:`cqrs_lab.load.audit`: the final answers of the views, and the writes they hold;
- :mod:`cqrs_lab.load.twin`, :mod:`~cqrs_lab.load.calibration`,
  :mod:`~cqrs_lab.load.prediction`, :mod:`~cqrs_lab.load.measure`,
  :mod:`~cqrs_lab.load.compare`: the simulation calibrated from load tests, its
  predictions, what was measured, and predicted vs measured;
- :mod:`cqrs_lab.load.locustfile`: the Locust users, built from any domain's workload
  (their options: :mod:`~cqrs_lab.load.locust_options`);
- :mod:`cqrs_lab.load.traffic`: what a user sends (the workload as HTTP requests);
- :mod:`cqrs_lab.load.shapes`, :mod:`cqrs_lab.load.workload`: load profiles, pacing, mix.

>>> from cqrs_lab.load import Profile
>>> Profile("spike", peak=100.0, duration=10.0).level(5.0)
100.0
"""

from cqrs_lab.load.audit import acknowledged_writes
from cqrs_lab.load.faults import FaultStep, parse_fault
from cqrs_lab.load.records import REQUEST_COLUMNS, RunRecorder
from cqrs_lab.load.results import LoadResult, load_results, percentiles
from cqrs_lab.load.runner import LoadTestOptions, run_loadtest
from cqrs_lab.load.shapes import SHAPES, OpenPacer, Profile
from cqrs_lab.load.traffic import Traffic
from cqrs_lab.load.workload import CommandMix, ZipfKeys, parse_mix

__all__ = [
    "REQUEST_COLUMNS",
    "SHAPES",
    "CommandMix",
    "FaultStep",
    "LoadResult",
    "LoadTestOptions",
    "OpenPacer",
    "Profile",
    "RunRecorder",
    "Traffic",
    "ZipfKeys",
    "acknowledged_writes",
    "load_results",
    "parse_fault",
    "parse_mix",
    "percentiles",
    "run_loadtest",
]
