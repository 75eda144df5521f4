"""What requests cost: the pricing table (data shipped in the package) and the cost of a usage.

The table (``anyoai/pricing.json``) gives, per model and in US dollars per 1M tokens, the
prices of input, cached input, output, and of the Batch API. A model is found by its name, an
alias (``chatgpt-4o-latest``, Azure's ``gpt-35-turbo``), a dated snapshot
(``gpt-4o-2024-08-06``), or its name without a date suffix. Users change it at run time:
``anyoai.pricing.set_price("my-model", input=0.2, output=0.8)`` or
``anyoai.pricing.load("prices.json")``.

The cost of a usage::

    (prompt - cached) * input + cached * cached_input + completion * output   [per 1M tokens]

with the batch prices for Batch API results (half the standard ones where the table has none),
and ``cached_input`` falling back to ``input``. An unknown model costs ``None``, with one warning
per model name.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Consumption", "Price", "PricingTable", "consumption_of", "cost_of", "pricing"]

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@attrs.frozen(kw_only=True)
class Price:
    """Prices of one model in US dollars per 1M tokens (``None``: not sold that way)."""

    input: float
    output: float | None = None
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None


class Consumption(float):
    """A cost in US dollars: a ``float``, with what it was computed from.

    :ivar estimated: ``True`` when the token counts were estimated with tiktoken (a stream
        without a usage chunk), not reported by the server.
    :ivar model: the model it was priced as.
    :ivar prompt_tokens: the input tokens (cached ones included).
    :ivar cached_tokens: the input tokens billed at the cached price.
    :ivar completion_tokens: the output tokens.
    :ivar batch: whether batch prices applied.
    """

    estimated: bool
    model: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    batch: bool

    def __new__(
        cls,
        usd: float,
        *,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        estimated: bool = False,
        batch: bool = False,
    ) -> Consumption:
        self = super().__new__(cls, usd)
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.completion_tokens = completion_tokens
        self.estimated = estimated
        self.batch = batch
        return self

    def __repr__(self) -> str:
        flag = ", estimated" if self.estimated else ""
        return f"Consumption(${float(self):.8f}, {self.model}{flag})"


class PricingTable:
    """Prices by model, with aliases and dated snapshots. See the module docstring."""

    def __init__(self) -> None:
        self._prices: dict[str, Price] = {}
        self._aliases: dict[str, str] = {}
        self._warned: set[str] = set()
        self.as_of: str | None = None

    @classmethod
    def default(cls) -> PricingTable:
        """The table shipped with anyoai."""
        table = cls()
        text = resources.files("anyoai").joinpath("pricing.json").read_text("utf-8")
        table.load(json.loads(text))
        return table

    def load(self, source: Mapping[str, Any] | str | Path) -> None:
        """Add (or replace) the prices in *source*: a mapping in the shipped file's shape, or
        the path of such a JSON file."""
        data = source if isinstance(source, Mapping) else json.loads(Path(source).read_text())
        models = data.get("models", data)
        if "as_of" in data:
            self.as_of = str(data["as_of"])
        for model, entry in models.items():
            names = [*entry.get("aliases", ()), *entry.get("snapshots", ())]
            fields = {k: v for k, v in entry.items() if k not in ("aliases", "snapshots")}
            self.set_price(model, aliases=names, **fields)

    def set_price(
        self,
        model: str,
        *,
        input: float,
        output: float | None = None,
        cached_input: float | None = None,
        batch_input: float | None = None,
        batch_output: float | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        """Set the prices of *model* (US dollars per 1M tokens), and names it is also known by."""
        self._prices[model] = Price(
            input=float(input),
            output=None if output is None else float(output),
            cached_input=None if cached_input is None else float(cached_input),
            batch_input=None if batch_input is None else float(batch_input),
            batch_output=None if batch_output is None else float(batch_output),
        )
        self._aliases.pop(model, None)
        for alias in aliases:
            self._aliases[alias] = model
        self._warned.discard(model)

    def lookup(self, model: str) -> Price | None:
        """The prices of *model*: by name, alias, snapshot, or name without a date suffix."""
        price = self._prices.get(model)
        if price is not None:
            return price
        for name in self._candidates(model):
            if name in self._prices:
                return self._prices[name]
            if name in self._aliases:
                return self._prices.get(self._aliases[name])
        return None

    @staticmethod
    def _candidates(model: str) -> list[str]:
        names = [model]
        bare = model.rsplit("/", 1)[-1]  # "openai/gpt-4o" on some compatible servers
        if bare != model:
            names.append(bare)
        undated = _DATE_SUFFIX.sub("", bare)
        if undated != bare:
            names.append(undated)
        return names

    def warn_unknown(self, model: str) -> None:
        """Warn, once per model, that a cost cannot be computed."""
        if model in self._warned:
            return
        self._warned.add(model)
        message = (
            f"anyoai has no price for model {model!r}: its consumption is None; add one with "
            f"anyoai.pricing.set_price({model!r}, input=..., output=...)"
        )
        # a warning, not a log record: it is the developer's to fix, and shows once by default
        warnings.warn(message, RuntimeWarning, stacklevel=3)


#: the table every result's ``consumption`` uses: the shipped one, changed at run time through
#: :mod:`anyoai.pricing` (a 4 kB JSON file, read at import)
TABLE: PricingTable = PricingTable.default()


def pricing() -> PricingTable:
    """The pricing table every result's ``consumption`` uses."""
    return TABLE


def cost_of(
    model: str,
    *,
    prompt_tokens: int,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    batch: bool = False,
    estimated: bool = False,
) -> Consumption | None:
    """The cost of a usage of *model* (``None``, and one warning, for an unknown model)."""
    table = pricing()
    price = table.lookup(model)
    if price is None:
        table.warn_unknown(model)
        return None
    input_price, output_price = price.input, price.output or 0.0
    cached_price = price.cached_input if price.cached_input is not None else price.input
    if batch:
        input_price = price.batch_input if price.batch_input is not None else input_price / 2
        output_price = price.batch_output if price.batch_output is not None else output_price / 2
        cached_price = min(cached_price, input_price)
    cached = min(cached_tokens, prompt_tokens)
    usd = (
        (prompt_tokens - cached) * input_price
        + cached * cached_price
        + completion_tokens * output_price
    ) / 1_000_000
    return Consumption(
        usd,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached,
        estimated=estimated,
        batch=batch,
    )


def consumption_of(result: Any) -> Consumption | None:
    """The cost of a result (chat, completion, embeddings, edit) from its usage, or from the
    estimated usage a stream without a usage chunk carries; ``None`` when unknown."""
    usage = getattr(result, "usage", None)
    meta = getattr(result, "meta", None)
    estimated = False
    if usage is None and meta is not None and meta.estimated_usage is not None:
        usage, estimated = meta.estimated_usage, True
    model = getattr(result, "model", None)
    if usage is None or not model:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    return cost_of(
        model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
        batch=bool(meta is not None and meta.batch),
        estimated=estimated,
    )
