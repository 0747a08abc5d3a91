"""dcslog: DCS-compatible log management for self-run Redis fleets."""
