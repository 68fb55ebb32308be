"""jobwire.runtime: service plumbing shared by every jobwire process (settings, bus, telemetry, lifecycle)."""
