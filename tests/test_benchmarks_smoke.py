"""Each benchmark scenario runs at tiny sizes, so that the benchmarks never rot.

These check that the scenarios run and report their figures; they assert no speed (speed is
measured by ``python -m benchmarks``, never in tests).
"""

from __future__ import annotations

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
