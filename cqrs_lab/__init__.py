"""cqrs_lab: a simulation and load-testing lab for CQRS systems, on one deterministic engine."""

__version__ = "0.1.0"
