"""The benchmark report: ``benchmarks/results.json``, ``docs/benchmarks.md`` (tables of absolute
figures and ratios, the targets, the machine) and one PNG plot per scenario in ``docs/img/``.

The page's "Findings" section is kept by hand in ``benchmarks/findings.md`` (what a missed
target comes from, with its profile) and copied in as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SUBJECT = "anyoai-asyncio"

#: (scenario, figure, peer, bound, what): anyoai's figure / the peer's must stay <= bound
TARGETS = [
    ("chat", "cpu_us_per_request", "openai", 0.35, "non-streamed CPU/request vs openai-python"),
    ("chat", "cpu_us_per_request", "httpcore-conn", 1.25, "non-streamed CPU/request vs the floor"),
    ("stream", "cpu_us_per_chunk", "openai", 0.5, "streamed CPU/chunk vs openai-python"),
]


def _median(row: dict[str, Any], figure: str) -> float:
    return float(row[figure]["median"])


def _find(rows: list[dict[str, Any]], peer: str, **match: Any) -> dict[str, Any] | None:
    """The measured row of *peer* matching *match* (None if absent or failed)."""
    for row in rows:
        if row["peer"] == peer and all(row.get(k) == v for k, v in match.items()):
            return None if "error" in row else row
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured ratio and whether it holds."""
    checks: list[dict[str, Any]] = []
    scenarios = results["scenarios"]
    for scenario, figure, peer, bound, what in TARGETS:
        rows = scenarios.get(scenario, [])
        for row in rows:
            if row["peer"] != SUBJECT or "error" in row:
                continue
            other = _find(rows, peer, concurrency=row.get("concurrency"))
            if other is None:
                continue
            ratio = _median(row, figure) / _median(other, figure)
            checks.append(
                {
                    "target": f"{what}, {row.get('concurrency')} in flight",
                    "ratio": ratio,
                    "bound": bound,
                    "met": ratio <= bound,
                }
            )
    chat = scenarios.get("chat", [])
    at_16, at_1024 = _find(chat, SUBJECT, concurrency=16), _find(chat, SUBJECT, concurrency=1024)
    if at_16 and at_1024:
        ratio = _median(at_1024, "cpu_us_per_request") / _median(at_16, "cpu_us_per_request")
        checks.append(
            {
                "target": "no collapse: CPU/request at 1,024 vs at 16",
                "ratio": ratio,
                "bound": 1.5,
                "met": ratio <= 1.5,
            }
        )
    imports = {row["peer"]: row for row in scenarios.get("import", [])}
    if "anyoai" in imports and "openai" in imports:
        ratio = _median(imports["anyoai"], "import_ms") / _median(imports["openai"], "import_ms")
        checks.append(
            {
                "target": "import time vs import openai",
                "ratio": ratio,
                "bound": 0.5,
                "met": ratio <= 0.5,
            }
        )
    return checks


def _cell(summary: dict[str, float], digits: int = 0) -> str:
    return (
        f"{summary['median']:,.{digits}f} "
        f"({summary['min']:,.{digits}f}-{summary['max']:,.{digits}f})"
    )


def _table(
    rows: list[dict[str, Any]], key: str, figures: list[tuple[str, str, int]], ratio_of: str
) -> list[str]:
    """A markdown table: one line per (variant, peer), with anyoai / peer ratios."""
    head = ["peer", key] + [title for _, title, _ in figures] + ["anyoai / peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        subject = _find(rows, SUBJECT, **{key: row.get(key)})
        ratio = (
            f"{_median(subject, ratio_of) / _median(row, ratio_of):.2f}x"
            if subject and row["peer"] != SUBJECT and "error" not in row
            else "-"
        )
        peer = row["peer"]
        if row.get("failed_runs"):
            peer += f" ({row['failed_runs']} run(s) failed: {row['failure']})"
        cells = [peer, str(row.get(key))]
        if "error" in row:
            cells += [f"failed: {row['error']}", *(["-"] * (len(figures) - 1))]
        else:
            cells += [_cell(row[figure], digits) for figure, _, digits in figures]
        lines.append("| " + " | ".join([*cells, ratio]) + " |")
    return lines


def _plot(rows: list[dict[str, Any]], key: str, figure: str, title: str, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    variants = list(dict.fromkeys(row.get(key) for row in rows))
    peers = list(dict.fromkeys(row["peer"] for row in rows))
    width = 0.8 / max(len(peers), 1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, peer in enumerate(peers):
        values, lows, highs = [], [], []
        for variant in variants:
            row = _find(rows, peer, **{key: variant})
            summary = row[figure] if row else {"median": 0, "min": 0, "max": 0}
            values.append(summary["median"])
            lows.append(summary["median"] - summary["min"])
            highs.append(summary["max"] - summary["median"])
        positions = [v + i * width for v in range(len(variants))]
        ax.bar(positions, values, width, label=peer, yerr=[lows, highs], capsize=2)
    ax.set_xticks([v + width * (len(peers) - 1) / 2 for v in range(len(variants))])
    ax.set_xticklabels([f"{key}={v}" for v in variants])
    ax.set_title(title)
    ax.set_yscale("log")  # a collapsing peer is 100x the others: keep the rest readable
    ax.set_ylabel(figure.replace("_", " ") + " (log scale)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def page(results: dict[str, Any], plots: dict[str, str]) -> str:
    """The markdown page."""
    m = results["machine"]
    scenarios = results["scenarios"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` (`tox -e bench`) on "
        f"{results['date']}; medians of {results['repeat']} repetitions, with their range in "
        "brackets. Each measurement runs in a fresh process; peers alternate; the server is "
        "nginx answering fixed bodies on 127.0.0.1 (the memory scenario uses anyoai's fake "
        "server). CPU is the client process's user + system time (`resource.getrusage`), "
        "after a warm-up. A peer that would need more than 15 s per measurement at its cost "
        "per request at the previous concurrency runs fewer requests there (at least one per "
        "connection); `benchmarks/results.json` has every count.",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, {m['system']}; "
        f"{m['implementation']} {m['python']}; nginx {m.get('nginx')}.",
        "",
        "**Versions:** " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        "",
        "## Targets",
        "",
        "| target | anyoai ÷ peer | bound | |",
        "|---|---|---|---|",
    ]
    for check in targets(results):
        mark = "met" if check["met"] else "**missed**"
        lines.append(f"| {check['target']} | {check['ratio']:.2f} | ≤ {check['bound']} | {mark} |")
    findings = HERE / "findings.md"
    if findings.exists():
        lines += ["", findings.read_text().strip()]
    sections = [
        (
            "chat",
            "Non-streamed chat completion",
            "concurrency",
            [("cpu_us_per_request", "CPU µs/request", 0), ("requests_per_s", "requests/s", 0)],
            "cpu_us_per_request",
        ),
        (
            "stream",
            "Streamed chat completion",
            "concurrency",
            [("cpu_us_per_chunk", "CPU µs/chunk", 1), ("first_chunk_ms", "first chunk, ms", 2)],
            "cpu_us_per_chunk",
        ),
        (
            "embeddings",
            "Embeddings",
            "encoding",
            [("cpu_us_per_request", "CPU µs/request", 0)],
            "cpu_us_per_request",
        ),
    ]
    for name, title, key, figures, ratio_of in sections:
        if name not in scenarios:
            continue
        lines += ["", f"## {title}", ""]
        lines += _table(scenarios[name], key, figures, ratio_of)
        if name in plots:
            lines += ["", f"![{title}]({plots[name]})"]
    if "import" in scenarios:
        lines += [
            "",
            "## Import time",
            "",
            "| module | ms (cumulative, -X importtime) |",
            "|---|---|",
        ]
        for row in scenarios["import"]:
            lines.append(f"| {row['peer']} | {_cell(row['import_ms'], 1)} |")
    if "memory" in scenarios:
        lines += [
            "",
            "## Memory",
            "",
            "| requests | limit | peak RSS, MiB | requests/s |",
            "|---|---|---|---|",
        ]
        for row in scenarios["memory"]:
            lines.append(
                f"| {row['requests']:,} | {row['limit']} | {row['peak_rss_mib']:.0f} "
                f"| {row['requests_per_s']:.0f} |"
            )
    if "ratelimit" in scenarios:
        lines += [
            "",
            "## Rate-limit utilisation",
            "",
            "| client | quota used | share of 429s | batches lost |",
            "|---|---|---|---|",
        ]
        for row in scenarios["ratelimit"]:
            lines.append(
                f"| {row['client']} | {row['quota_used']:.0%} | {row['share_429']:.0%} "
                f"| {row.get('batches_lost', '-')} |"
            )
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], root: Path) -> None:
    """Write results.json, the page and the plots under *root* (the repository, or a temp dir)."""
    (root / "benchmarks").mkdir(parents=True, exist_ok=True)
    (root / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots: dict[str, str] = {}
    scenarios = results["scenarios"]
    for name, key, figure, title in (
        ("chat", "concurrency", "cpu_us_per_request", "Non-streamed: client CPU µs per request"),
        ("stream", "concurrency", "cpu_us_per_chunk", "Streamed: client CPU µs per chunk"),
        ("embeddings", "encoding", "cpu_us_per_request", "Embeddings: client CPU µs per request"),
    ):
        if name in scenarios:
            path = root / "docs" / "img" / f"bench-{name}.png"
            if _plot(scenarios[name], key, figure, title, path):
                plots[name] = f"img/bench-{name}.png"
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "benchmarks.md").write_text(page(results, plots))
