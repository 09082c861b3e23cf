"""Typed, typo-proof look-ups into a parsed TOML document (the mapping file's reader)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, get_args


class TomlReader:
    """Typed look-ups into parsed TOML that remember which keys were read."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = data
        self._read: set[tuple[str, str]] = set()

    def _get(self, table: str, key: str) -> object:
        """Return the raw value of table.key, or None when absent."""
        self._read.add((table, key))
        section = self._data.get(table, {})
        if not isinstance(section, dict):
            raise ValueError(f"[{table}] must be a table")
        return section.get(key)

    def text(self, table: str, key: str, default: str) -> str:
        """Return a string value (non-empty unless the default is empty)."""
        value = self._get(table, key)
        if value is None:
            return default
        if not isinstance(value, str) or (default and not value.strip()):
            raise ValueError(f"{table}.{key} must be a non-empty string, not {value!r}")
        return value

    def choice(self, table: str, key: str, options: Any, default: str) -> Any:
        """Return one of a Literal's values."""
        value = self.text(table, key, default)
        allowed = get_args(options)
        if value not in allowed:
            listed = ", ".join(f'"{a}"' for a in allowed)
            raise ValueError(f"{table}.{key} must be one of {listed}, not {value!r}")
        return value

    def flag(self, table: str, key: str) -> bool:
        """Return a boolean value (default false)."""
        value = self._get(table, key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise ValueError(f"{table}.{key} must be true or false, not {value!r}")
        return value

    def integer(self, table: str, key: str, default: int, minimum: int, maximum: int) -> int:
        """Return an integer from `minimum` to `maximum`."""
        value = self._get(table, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(
                f"{table}.{key} must be an integer from {minimum} to {maximum}, not {value!r}"
            )
        return value

    def percent(self, table: str, key: str, default: Decimal) -> Decimal:
        """Return a percentage above 0 and at most 100 as an exact Decimal."""
        value = self._get(table, key)
        if value is None:
            return default
        # TOML floats are binary: read them through their repr so 12.5 stays exactly 12.5.
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if isinstance(value, bool) or not isinstance(number, (int, Decimal)):
            raise ValueError(f"{table}.{key} must be a number, not {value!r}")
        if not (Decimal(number).is_finite() and 0 < number <= 100):
            raise ValueError(f"{table}.{key} must be above 0 and at most 100, not {value!r}")
        return Decimal(number)

    def path(self, table: str, key: str, default: str) -> str:
        """Return a URL path starting with a slash."""
        value = self.text(table, key, default).strip()
        if not value.startswith("/") or any(ch.isspace() for ch in value):
            raise ValueError(f"{table}.{key} must be a path starting with '/', not {value!r}")
        return value

    def reject_unknown(self) -> None:
        """Raise ValueError for a table or key this module does not know (a typo, usually)."""
        tables = {table for table, _ in self._read}
        for table, section in self._data.items():
            if table not in tables:
                raise ValueError(f"unknown table [{table}]; known: {', '.join(sorted(tables))}")
            for key in section if isinstance(section, dict) else ():
                if (table, key) not in self._read:
                    raise ValueError(f"unknown key {table}.{key}")
