"""Each benchmark scenario runs at tiny sizes, so that the benchmarks never rot.

These check that the scenarios run and report their figures; they assert no speed (speed is
measured by ``python -m benchmarks``, never in tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ratelimit


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rate_limit_utilisation_smoke() -> None:
    results = {r["client"]: r for r in ratelimit.main(["--smoke", "--json"])}
    assert set(results) == {"anyoai", "naive"}
    for figures in results.values():
        assert figures["requests"] > 0
        assert figures["quota_used"] > 0
        assert 0 <= figures["share_429"] <= 1
    # whatever the timing, anyoai completes the job: nothing is lost
    assert results["anyoai"]["batches_lost"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    from benchmarks import __main__ as bench
    from benchmarks.peers import PEERS

    results = bench.main(["--smoke", "--out", str(tmp_path)])
    scenarios = results["scenarios"]
    assert set(scenarios) == {"chat", "stream", "embeddings", "import", "memory", "ratelimit"}
    # every peer ran every client scenario, with sane figures
    for name, figure in (
        ("chat", "cpu_us_per_request"),
        ("stream", "cpu_us_per_chunk"),
        ("embeddings", "cpu_us_per_request"),
    ):
        assert {row["peer"] for row in scenarios[name]} == set(PEERS), name
        assert all(row[figure]["median"] > 0 for row in scenarios[name]), name
    assert {row["concurrency"] for row in scenarios["chat"]} == {1, 16}
    assert {row["encoding"] for row in scenarios["embeddings"]} == {"float", "base64"}
    assert all(row["first_chunk_ms"]["median"] > 0 for row in scenarios["stream"])
    assert {row["peer"] for row in scenarios["import"]} == {"anyoai", "openai"}
    assert scenarios["memory"][0]["requests"] == 200 and scenarios["memory"][0]["peak_rss_mib"] > 0
    # the outputs: machine-readable results, the page with its targets, one plot per scenario
    written = json.loads((tmp_path / "benchmarks" / "results.json").read_text())
    assert written["scenarios"].keys() == scenarios.keys()
    page = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "## Targets" in page and "openai" in page and "httpcore-conn" in page
    for name in ("chat", "stream", "embeddings"):
        assert (tmp_path / "docs" / "img" / f"bench-{name}.png").stat().st_size > 1000
        assert f"img/bench-{name}.png" in page
