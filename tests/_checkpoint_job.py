"""A 200-item checkpointed job, run in a subprocess by the SIGKILL test of test_concurrency.

usage: python _checkpoint_job.py JOURNAL CALLS_FILE BACKEND

Each call appends its item's index to CALLS_FILE, sleeps a little and returns a small dict. At
the end the results are printed as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

import anyio

from anyoai._concurrency import map_concurrent

N = 200
LIMIT = 4
DELAY = 0.04


def expected(index: int) -> dict[str, int]:
    """The result for item *index*."""
    return {"n": index, "square": index * index}


async def main(journal: str, calls: str) -> None:
    fd = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:

        async def job(index: int) -> dict[str, int]:
            os.write(fd, b"%d\n" % index)
            await anyio.sleep(DELAY)
            return expected(index)

        results = await map_concurrent(job, range(N), limit=LIMIT, checkpoint=journal)
    finally:
        os.close(fd)
    print(json.dumps(results))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], backend=sys.argv[3])
