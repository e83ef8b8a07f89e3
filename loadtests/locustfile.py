"""``locust -f loadtests/locustfile.py``: the packaged users (see cqrs_lab.load.locustfile)."""

from cqrs_lab.load.locustfile import *  # noqa: F403
