"""Response headers as a read-only, case-insensitive mapping, decoded only when first read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

__all__ = ["Headers"]


class Headers(Mapping[str, str]):
    """The headers of a response. Names are lower-case; repeated headers are joined with ``, ``.

    Building it costs nothing: the raw ``(name, value)`` byte pairs are decoded on first access.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] | Mapping[str, str] = ()) -> None:
        if isinstance(raw, Mapping):
            self._decoded: dict[str, str] | None = {k.lower(): v for k, v in raw.items()}
            self._raw: Sequence[tuple[bytes, bytes]] = ()
        else:
            self._decoded = None
            self._raw = raw

    def _items(self) -> dict[str, str]:
        decoded = self._decoded
        if decoded is None:
            decoded = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                decoded[key] = f"{decoded[key]}, {text}" if key in decoded else text
            self._decoded = decoded
        return decoded

    def __getitem__(self, key: str) -> str:
        return self._items()[key.lower()]

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The value of header *key* (any case), or *default*."""
        return self._items().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items()

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"Headers({self._items()!r})"
