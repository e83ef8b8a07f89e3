"""What a ``--store`` value names, and how it is printed without its credentials.

>>> is_postgres("postgresql://lab:s3cret@db:5432/lab"), is_postgres("sqlite:x.db")
(True, False)
>>> shown_store("postgresql://lab:s3cret@db:5432/lab")
'postgresql://***@db:5432/lab'
>>> shown_store("host=db user=lab password=s3cret")
'host=db user=lab password=***'
"""

from __future__ import annotations

import re

__all__ = ["is_postgres", "shown_store"]


def is_postgres(store: str) -> bool:
    """Does a ``--store`` value name a PostgreSQL database (``postgresql://...``)?"""
    return store.startswith(("postgresql://", "postgres://")) and len(store) > len("postgres://")


def shown_store(store: str) -> str:
    """``store`` as printed: a URL's user and password, or a DSN's password, as ``***``."""
    store = re.sub(r"(password\s*=\s*)\S+", r"\1***", store)
    return re.sub(r"//[^@/]*@", "//***@", store)
