"""Program catalogs: ``program: "NAME@VERSION"`` resolved on the node to an argv, never a shell line.

A backend builds a :class:`Catalog` from configured entries (:func:`load_programs`) and discovery
(:func:`scan` over its transport), sets it as its executor's ``catalog``; the service keeps it
rescanned and published for the gateway (:func:`keep_published`).
"""

from .config import CatalogConfigError, load_programs
from .discovery import scan
from .model import Catalog, Program, ProgramNotFound, Scan
from .publish import keep_published, publish

__all__ = [
    "Catalog",
    "CatalogConfigError",
    "Program",
    "ProgramNotFound",
    "Scan",
    "keep_published",
    "load_programs",
    "publish",
    "scan",
]
