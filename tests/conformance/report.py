"""What each conformance check found, per endpoint, for the summary at the end of the run."""

from __future__ import annotations

from collections import defaultdict


class Report:
    """Outcomes by endpoint and check; printed as a table by the conftest."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = defaultdict(dict)

    def record(self, endpoint: str, check: str, outcome: str) -> None:
        """Note *outcome* (e.g. ``"ok"``, ``"ok (20 seeds)"``) of *check* for *endpoint*."""
        self.rows[endpoint][check] = outcome

    def table(self) -> str:
        checks = sorted({check for row in self.rows.values() for check in row})
        lines = [
            "| endpoint | " + " | ".join(checks) + " |",
            "|---|" + "---|" * len(checks),
        ]
        for endpoint in sorted(self.rows):
            row = self.rows[endpoint]
            lines.append(f"| {endpoint} | " + " | ".join(row.get(c, "-") for c in checks) + " |")
        return "\n".join(lines)


REPORT = Report()
