"""Reliability tests: anyoai against servers that misbehave (failures, failover, faults)."""
