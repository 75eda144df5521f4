"""Constants and small helpers shared by the tests."""

from __future__ import annotations

#: the key the fake server demands; long enough to be masked, with a recognisable tail
API_KEY = "sk-test-anyoai-secret-0123456789abcdef-TAIL"
