"""Shared test configuration: hypothesis profiles.

``CQRS_LAB_HYPOTHESIS_PROFILE=thorough`` for long local runs; CI uses ``ci`` (bounded and
derandomized, so ``make test`` stays within its time and gives the same verdict every run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "thorough", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("CQRS_LAB_HYPOTHESIS_PROFILE", "ci"))
