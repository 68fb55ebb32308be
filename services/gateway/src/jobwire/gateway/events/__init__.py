"""Job events from JOBWIRE_EVT as SSE, and the latest progress."""
