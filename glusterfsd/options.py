"""The option schema every xlator declares, and the parsing of volfile values.

GlusterFS validates each `option KEY VALUE` of a volfile against the xlator's
`struct volume_options` table before `init` runs; an unknown key or a value of
the wrong type stops the process with the file, line and key.  `Option` is one
row of that table; `OptionTable.validate` does the checking and returns typed
values, so xlators never parse strings themselves.
"""
from __future__ import annotations

import fnmatch
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class OptionError(ValueError):
    """A volfile option that is unknown or whose value does not fit its type."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


_TRUE = {"on", "yes", "true", "enable", "1"}
_FALSE = {"off", "no", "false", "disable", "0"}

_SIZE_SUFFIX = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"'{text}' is not a boolean (use on/off, yes/no, true/false)")


def parse_int(text: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise ValueError(f"'{text}' is not an integer") from None


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_SUFFIX:
        raise ValueError(f"'{text}' is not a size (a number, optionally with KB, MB, GB or TB)")
    return int(match.group(1)) * _SIZE_SUFFIX[match.group(2).lower()]


def parse_double(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


def parse_percent(text: str) -> float:
    value = parse_double(text.strip().rstrip("%"))
    if not 0 <= value <= 100:
        raise ValueError(f"'{text}' is not a percentage between 0 and 100")
    return value


def parse_path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"'{text}' is not an absolute path")
    return text


def parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a UUID") from None


def parse_auth_addr(text: str) -> tuple[str, ...]:
    """A comma list of addresses, CIDR networks, host names or patterns (`*`)."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise ValueError("empty address list")
    for item in items:
        if "/" in item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"'{item}' is not a CIDR network") from None
        elif not re.fullmatch(r"[A-Za-z0-9_.:*?\[\]-]+", item):
            raise ValueError(f"'{item}' is not an address, network or host name")
    return items


PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "bool": parse_bool,
    "int": parse_int,
    "sizet": parse_size,
    "double": parse_double,
    "percent": parse_percent,
    "path": parse_path,
    "uuid": parse_uuid,
    "client-auth-addr": parse_auth_addr,
    "choice": str,
}


@dataclass(frozen=True)
class Option:
    """One row of an xlator's option table.

    `key` may contain `*` where a volume (subvolume) name goes, as gnfs's
    `nfs3.*.volume-access` does; `OptionTable.lookup` matches such patterns.
    """

    key: str
    type: str = "str"
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.type not in PARSERS:
            raise TypeError(f"option {self.key}: unknown type {self.type}")

    def parse(self, text: str) -> Any:
        """Turn the volfile's text into a typed value, or raise OptionError."""
        try:
            value = PARSERS[self.type](text)
        except ValueError as err:
            raise OptionError(self.key, str(err)) from None
        if self.choices and value.lower() not in self.choices:
            raise OptionError(self.key, f"'{text}' is not one of {', '.join(self.choices)}")
        if self.choices:
            value = value.lower()
        if self.min is not None and value < self.min:
            raise OptionError(self.key, f"{text} is below the minimum {self.min:g}")
        if self.max is not None and value > self.max:
            raise OptionError(self.key, f"{text} is above the maximum {self.max:g}")
        return value

    def default_value(self) -> Any:
        if self.default is None or not isinstance(self.default, str):
            return self.default
        return self.parse(self.default)

    def describe(self) -> str:
        bounds = ""
        if self.choices:
            bounds = " {" + "|".join(self.choices) + "}"
        elif self.min is not None or self.max is not None:
            bounds = f" [{self.min if self.min is not None else ''}..{self.max if self.max is not None else ''}]"
        default = "" if self.default is None else f" (default {self.default})"
        return f"{self.key} <{self.type}>{bounds}{default}\n        {self.description}"


class OptionTable:
    """An xlator's options, matched exactly or by `*` pattern."""

    def __init__(self, options: Iterable[Option]):
        self.options = tuple(options)
        self._exact = {}
        self._patterns = []
        for opt in self.options:
            for key in (opt.key, *opt.aliases):
                if "*" in key:
                    self._patterns.append((key, opt))
                else:
                    self._exact[key] = opt

    def lookup(self, key: str) -> Option | None:
        if key in self._exact:
            return self._exact[key]
        for pattern, opt in self._patterns:
            if fnmatch.fnmatchcase(key, pattern) and "." not in _star_part(pattern, key):
                return opt
        return None

    def validate(self, given: dict[str, str]) -> dict[str, Any]:
        """Typed values for every given key; raises OptionError on the first bad one."""
        values = {}
        for key, text in given.items():
            opt = self.lookup(key)
            if opt is None:
                raise OptionError(key, f"unknown option '{key}'")
            try:
                values[key] = opt.parse(text)
            except OptionError as err:
                raise OptionError(key, err.message) from None
        return values

    def defaults(self) -> dict[str, Any]:
        return {opt.key: opt.default_value() for opt in self.options if "*" not in opt.key}


def _star_part(pattern: str, key: str) -> str:
    """The text a single `*` of pattern stands for in key ('' if no single star)."""
    if pattern.count("*") != 1:
        return ""
    head, tail = pattern.split("*")
    return key[len(head): len(key) - len(tail)]
