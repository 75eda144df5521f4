"""The prices behind ``result.consumption``: look them up, change them, add your own.

The table ships with anyoai (``anyoai/pricing.json``: US dollars per 1M tokens, with the date
it was checked); it is data, not code::

    anyoai.pricing.set_price("my-finetune", input=0.3, output=1.2, aliases=["ft:gpt-4o-mini:acme"])
    anyoai.pricing.load("our-azure-prices.json")   # the same shape as the shipped file
    anyoai.pricing.lookup("gpt-4o-2024-08-06")      # Price(input=2.5, output=10.0, ...)
"""

from __future__ import annotations

from ._pricing import TABLE, Consumption, Price, PricingTable, cost_of

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

#: Set the prices of a model, in US dollars per 1M tokens, and names it is also known by:
#: ``set_price(model, *, input, output=None, cached_input=None, batch_input=None,
#: batch_output=None, aliases=())``.
set_price = TABLE.set_price

#: Add or replace prices from a mapping, or a JSON file, shaped like ``pricing.json``.
load = TABLE.load

#: The prices of a model (by name, alias, snapshot or undated name), or ``None``.
lookup = TABLE.lookup


def table() -> PricingTable:
    """The pricing table in use."""
    return TABLE
