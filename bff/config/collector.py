"""The collector: reads one value at a time from command-line overrides, then the
environment, then a `<NAME>_FILE` secret file, then TOML; converts it; remembers where
it came from; and files every problem instead of stopping at the first one."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Collector"]


class Collector:
    """Reads settings from overrides, env (wins over the file) and a TOML mapping,
    collecting problems. `env_prefix` names the environment variables (`BFF_` for the
    default frontend and the process) and labels the problems of values without a source."""

    def __init__(
        self,
        environ: Mapping[str, str],
        toml: Mapping[str, Any],
        overrides: Mapping[str, Any],
        *,
        env_prefix: str = "BFF_",
    ) -> None:
        self.environ = environ
        self.toml = toml
        self.overrides = overrides
        self.env_prefix = env_prefix
        self.problems: list[str] = []
        self.sources: dict[str, str] = {}

    def label(self, name: str) -> str:
        """The environment name of setting `name`, which problems are filed under."""
        return f"{self.env_prefix}{name.upper()}"

    def raw(self, name: str, *, secret: bool = False) -> tuple[Any, str] | None:
        got = self._raw(name, secret=secret)
        if got is not None:
            self.sources[name] = "config file" if got[1] == name else got[1]
        return got

    def _raw(self, name: str, *, secret: bool) -> tuple[Any, str] | None:
        env = self.label(name)
        if name in self.overrides:  # command-line flags beat environment and file
            return self.overrides[name], f"--{name.replace('_', '-')}"
        if env in self.environ:
            return self.environ[env], env
        if secret and f"{env}_FILE" in self.environ:
            path = self.environ[f"{env}_FILE"]
            try:
                return Path(path).read_text(encoding="utf-8").strip(), f"{env}_FILE"
            except OSError as exc:
                self.problems.append(f"{env}_FILE: cannot read {path} ({exc.strerror})")
                return None
        if name in self.toml:
            return self.toml[name], name
        return None

    def text(self, name: str, default: str | None = None, *, secret: bool = False) -> str | None:
        got = self.raw(name, secret=secret)
        if got is None:
            return default
        value, source = got
        if not isinstance(value, str):
            self.problems.append(f"{source}: must be a string")
            return default
        return value.strip()

    def required(self, name: str, *, secret: bool = False) -> str:
        value = self.text(name, secret=secret)
        if not value:
            env = self.label(name)
            hint = f" (or {env}_FILE)" if secret else ""
            self.problems.append(f"{env}: required{hint}")
            return ""
        return value

    def seconds(self, name: str, default: int) -> float:
        """A duration that must be greater than 0."""
        value = self.number(name, default, minimum=0, as_float=True)
        if value == 0:
            self.problems.append(f"{self.label(name)}: must be greater than 0")
        return float(value)

    def number(self, name: str, default: int, *, minimum: int, as_float: bool = False) -> Any:
        got = self.raw(name)
        if got is None:
            return default
        value, source = got
        convert: Callable[[Any], Any] = float if as_float else int
        try:
            if isinstance(value, bool):
                raise ValueError
            number = convert(value)
        except (TypeError, ValueError, OverflowError):  # int(inf) from TOML overflows
            self.problems.append(f"{source}: must be a number, got {value!r}")
            return default
        if not math.isfinite(number):  # float("inf"), float("nan"): no bound at all
            self.problems.append(f"{source}: must be a finite number, got {value!r}")
            return default
        if number < minimum:
            self.problems.append(f"{source}: must be at least {minimum}, got {number}")
            return default
        return number

    def flag(self, value: Any, source: str, default: bool) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        self.problems.append(f"{source}: must be true or false")
        return default

    def optional_flag(self, name: str, default: bool) -> bool:
        """A true/false setting that may be left out."""
        got = self.raw(name)
        return default if got is None else self.flag(got[0], got[1], default)
