"""`import anyoai` stays light: heavy and optional dependencies load only when needed."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_heavy_or_optional_modules() -> None:
    code = (
        "import sys, anyoai; "
        "print(','.join(m for m in ('tiktoken', 'obstore', 'trio', 'h2', 'httpcore') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importtime_report_has_none_of_them() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import anyoai"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    for heavy in ("tiktoken", "obstore", "trio", "h2"):
        assert heavy not in imported, f"{heavy} imported by `import anyoai`"
