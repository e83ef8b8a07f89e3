"""Example domains built only on the public API of :mod:`cqrs_lab.core`."""
