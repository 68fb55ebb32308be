"""Torque's two full-status formats, read into one shape: ``{job id: {attribute: value}}``.

``qstat -x`` (Torque's own flag) prints XML, one ``<Data>`` document per job id operand, each
behind an ``<?xml version="1.0"?>`` line in Torque 6 (older versions print no declaration). Values
are escaped (``&<>"'``) and never wrapped, so job names with ``=``, separators, newlines or
non-ASCII text survive. ``qstat -f`` prints ``Job Id:`` stanzas of ``key = value`` lines, wrapping
long values onto tab-indented lines. Resource attributes become dotted keys in both
(``resources_used.mem``), as ``qstat -f`` writes them.

The XML is read by the stdlib parser after refusing any DTD: Torque never writes one, and without
one no entity can be declared, so nothing is expanded or fetched (qstat's output is only
semi-trusted: job names and comments are user text).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from jobwire.execution.hpc import SchedulerError
from jobwire.execution.hpc.xmlout import refuse_dtd

#: one XML document as Torque prints it (values are escaped, so ``</Data>`` only closes one)
_DOCUMENT = re.compile(r"<Data\s*/>|<Data\s*>.*?</Data\s*>", re.DOTALL)
_DECLARATION = re.compile(r"<\?xml[^>]*\?>")
#: characters XML 1.0 forbids; Torque copies them from user text unescaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JOB_ID = re.compile(r"<Job_Id>([^<]{1,256})</Job_Id>")


def parse_qstat_f(text: str) -> dict[str, dict[str, str]]:
    """``Job Id: X`` stanzas of ``key = value`` lines; tab-indented lines continue the last value."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last = ""
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
            last = ""
        elif current is not None and line.startswith("\t") and last:
            current[last] += line.strip()
        elif current is not None and " = " in line:
            key, _, value = line.strip().partition(" = ")
            current[key] = value
            last = key
    return jobs


def parse_qstat_x(text: str) -> dict[str, dict[str, str]]:
    """Every ``<Job>`` of every ``<Data>`` document in ``text``; anything else there is an error.

    Raises :class:`SchedulerError` for a DTD, text outside the documents (a truncated answer) or a
    document the parser rejects, so that no job is ever taken for gone because its status was unreadable.
    """
    refuse_dtd(text, "qstat -x")
    text = _NOT_XML.sub("\ufffd", text)
    jobs: dict[str, dict[str, str]] = {}
    rest = _DOCUMENT.sub(" ", _DECLARATION.sub(" ", text)).strip()
    if rest:
        raise SchedulerError(f"qstat -x printed text outside its XML documents: {rest[:300]!r}")
    for m in _DOCUMENT.finditer(text):
        try:
            root = ET.fromstring(m.group(0))  # noqa: S314 - no DTD (refused above): nothing expands
        except ET.ParseError as e:
            ids = ", ".join(_JOB_ID.findall(m.group(0))[:5]) or "unknown"
            raise SchedulerError(f"qstat -x printed XML that cannot be read (job {ids}): {e}") from e
        for job in root.iter("Job"):
            attrs: dict[str, str] = {}
            _flatten(job, "", attrs)
            job_id = attrs.pop("Job_Id", "").strip()
            if job_id:
                jobs[job_id] = attrs
    return jobs


def _flatten(element: ET.Element, prefix: str, out: dict[str, str]) -> None:
    for child in element:
        key = prefix + child.tag
        if len(child):
            _flatten(child, key + ".", out)
        else:
            out[key] = child.text or ""


def exec_hosts(value: str) -> list[str]:
    """Host names of ``exec_host`` (``node01/0-3+node02/0-3`` → ``[node01, node02]``), in order, once each."""
    hosts: list[str] = []
    for part in value.split("+"):
        host = part.split("/", 1)[0].strip()
        if host and host not in hosts:
            hosts.append(host)
    return hosts
