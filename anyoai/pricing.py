"""The prices behind ``result.consumption``: look them up, change them, add your own.

The table ships with anyoai (``anyoai/pricing.json``: US dollars per 1M tokens, with the date
it was checked); it is data, not code::

    anyoai.pricing.set_price("my-finetune", input=0.3, output=1.2, aliases=["ft:gpt-4o-mini:acme"])
    anyoai.pricing.load("our-azure-prices.json")   # the same shape as the shipped file
    anyoai.pricing.lookup("gpt-4o-2024-08-06")      # Price(input=2.5, output=10.0, ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._pricing import Consumption, Price, PricingTable, cost_of, pricing

__all__ = [
    "Consumption",
    "Price",
    "PricingTable",
    "cost_of",
    "load",
    "lookup",
    "set_price",
    "table",
]


def table() -> PricingTable:
    """The pricing table in use."""
    return pricing()


def set_price(
    model: str,
    *,
    input: float,
    output: float | None = None,
    cached_input: float | None = None,
    batch_input: float | None = None,
    batch_output: float | None = None,
    aliases: Iterable[str] = (),
) -> None:
    """Set the prices of *model*, in US dollars per 1M tokens (and names it is known by)."""
    pricing().set_price(
        model,
        input=input,
        output=output,
        cached_input=cached_input,
        batch_input=batch_input,
        batch_output=batch_output,
        aliases=aliases,
    )


def load(source: Mapping[str, Any] | str | Path) -> None:
    """Add or replace prices from a mapping or a JSON file shaped like ``pricing.json``."""
    pricing().load(source)


def lookup(model: str) -> Price | None:
    """The prices of *model* (by name, alias, snapshot or undated name), or ``None``."""
    return pricing().lookup(model)
