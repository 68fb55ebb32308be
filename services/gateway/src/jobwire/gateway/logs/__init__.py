"""Job logs from JOBWIRE_LOG: plain text or SSE, follow and resume."""
