"""Every key of a scenario file, once: its type, unit, default and allowed values.

The readers (:mod:`cqrs_lab.sim.scenario_file`, :mod:`cqrs_lab.sim.scenario_load`) take keys,
defaults and bounds from :data:`TABLES`, and :mod:`cqrs_lab.sim.scenario_reference` renders
the same tables as the scenario file reference, so the two cannot disagree. The tables are
written in four modules by part of the file (:mod:`~cqrs_lab.sim.scenario_keys_run`,
:mod:`~cqrs_lab.sim.scenario_keys_views`, :mod:`~cqrs_lab.sim.scenario_keys_server`,
:mod:`~cqrs_lab.sim.scenario_keys_faults`); the kinds of keys in
:mod:`~cqrs_lab.sim.scenario_key_types`.

>>> [k.name for k in TABLES["faults.rebuild"].keys]
['at', 'projection', 'mode']
"""

from __future__ import annotations

from cqrs_lab.sim.scenario_key_types import PROCESSES, Key, Table, describe_default
from cqrs_lab.sim.scenario_keys_faults import FAULT_TABLES
from cqrs_lab.sim.scenario_keys_run import RUN_TABLES
from cqrs_lab.sim.scenario_keys_server import SERVER_TABLES
from cqrs_lab.sim.scenario_keys_views import VIEW_TABLES

__all__ = ["PROCESSES", "TABLES", "Key", "Table", "describe_default"]

#: table path -> its keys ("projections.NAME" stands for every view's table), in the
#: order of the reference
TABLES = {t.path: t for t in (*RUN_TABLES, *VIEW_TABLES, *SERVER_TABLES, *FAULT_TABLES)}
