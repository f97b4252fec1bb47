"""Typed access to a parsed TOML table, with errors that name the file and the key."""
from __future__ import annotations

from mslesseg_nnunet.errors import UserError
from mslesseg_nnunet.numbers import is_finite_number

_MISSING = object()


class Table:
    """One TOML table (``[section]``) whose keys are read once each, type-checked.

    Parameters
    ----------
    data : dict
        The parsed table.
    where : str
        How errors name the table, e.g. ``"[training]"`` or ``"[[labellings]][1]"``.
    file : str
        How errors name the experiment file.
    """

    def __init__(self, data, where: str, file: str):
        self.where, self.file = where, file
        if not isinstance(data, dict):
            self.fail(None, f"must be a table, not {type(data).__name__}")
        self.data = data
        self.read: set[str] = set()

    def fail(self, key, message: str):
        """Raise a one-line :class:`UserError` naming the file, the table and the key."""
        name = " ".join(part for part in (self.where, key) if part)
        raise UserError(f"{self.file}: {name}: {message}")

    def get(self, key: str, types, default=_MISSING):
        """The value of ``key`` (``default`` when absent; required without one), of ``types``."""
        self.read.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.fail(key, "missing (required)")
            return default
        value = self.data[key]
        types = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) and bool not in types:
            self.fail(key, f"expected {_type_names(types)}, got {value!r}")
        if not isinstance(value, types):
            self.fail(key, f"expected {_type_names(types)}, got {value!r}")
        return value

    def choice(self, key: str, choices, default=_MISSING):
        """A string value that must be one of ``choices``."""
        value = self.get(key, str, default)
        if value not in choices and value is not default:
            self.fail(key, f"{value!r} is not one of {', '.join(map(repr, choices))}")
        return value

    def integer(self, key: str, low=None, high=None, default=_MISSING):
        """An integer in ``[low, high]`` (either bound optional)."""
        value = self.get(key, int, default)
        if value is not default:
            check_range(self, key, value, low, high)
        return value

    def number(self, key: str, low=None, high=None, default=_MISSING):
        """An int or float in ``[low, high]``."""
        value = self.get(key, (int, float), default)
        if value is not default:
            check_range(self, key, value, low, high)
        return value

    def string_list(self, key: str, default=_MISSING) -> list[str]:
        """A list of strings."""
        value = self.get(key, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"expected a string, got {item!r}")
        return value

    def sub(self, key: str, default=_MISSING) -> "Table":
        """A nested table (``[section.key]`` or an inline table)."""
        return Table(self.get(key, dict, default), self.child_name(key), self.file)

    def child_name(self, key: str) -> str:
        """How errors name a nested table: ``[a]`` + ``b`` -> ``[a.b]``."""
        if not self.where:
            return f"[{key}]"
        if self.where.startswith("[") and self.where.endswith("]") and " " not in self.where:
            return f"{self.where[:-1]}.{key}]"
        return f"{self.where} {key}"

    def finish(self):
        """Reject keys that were never read: they are typos or unsupported options."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read)) or "none"
            self.fail(unknown[0], f"unknown key (known keys here: {known})")


def check_range(table: Table, key: str, value, low, high):
    """Fail unless ``value`` is finite and ``low <= value <= high`` (a ``None`` bound is open)."""
    if not is_finite_number(value):
        table.fail(key, f"{value!r} is not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        table.fail(key, f"{value!r} is out of range {span}")


def _type_names(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table", bool: "true/false"}
    return " or ".join(names.get(t, t.__name__) for t in types)
