"""Reading a batch system's XML output (SGE ``qstat -xml``, Torque ``qstat -x``) safely.

The output carries user text (job names, comments), so it is only semi-trusted. No batch system
writes a DTD; refusing one before the stdlib parser runs means no entity can be declared, so
nothing is expanded or fetched.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .base import SchedulerError

_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def refuse_dtd(text: str, what: str) -> None:
    """SchedulerError when ``text`` declares a DTD or an entity."""
    if _DTD.search(text):
        raise SchedulerError(f"{what} printed a DTD or entity declaration, which it never does: refused")


def parse_xml(text: str, what: str) -> ET.Element:
    """The root element of ``text``; SchedulerError for a DTD or XML that cannot be read."""
    refuse_dtd(text, what)
    try:
        return ET.fromstring(text)  # noqa: S314 - no DTD (refused above): nothing expands
    except ET.ParseError as e:
        raise SchedulerError(f"{what} printed no readable XML: {e}") from e
