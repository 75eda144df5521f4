"""The soak tier: a bounded run under random faults (tox -e soak, and CI)."""
