"""attrs classes shared by the schema and tool tests."""

from __future__ import annotations

import enum

import attrs


class Unit(str, enum.Enum):
    """A temperature unit."""

    celsius = "celsius"
    fahrenheit = "fahrenheit"


@attrs.frozen
class Location:
    """Where."""

    city: str = attrs.field(metadata={"description": "The city, e.g. San Francisco, CA."})
    country: str | None = None
