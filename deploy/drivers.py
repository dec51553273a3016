"""A registry of pluggable drivers by kind: ``<package>.<kind with '-' as '_'>.driver`` exposing ``DRIVER``."""

from __future__ import annotations

import importlib
import re
from typing import Generic, TypeVar

from deploy.errors import KvpodError

_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
D = TypeVar("D")


class DriverRegistry(Generic[D]):
    """Drivers of one family (switches, targets), found by kind and imported on first use."""

    def __init__(self, package: str, base: type, noun: str):
        self.package, self.base, self.noun = package, base, noun
        self._drivers: dict[str, D] = {}

    def register(self, driver: D) -> None:
        """Make ``driver`` the one :meth:`driver_for` returns for ``driver.kind``."""
        self._drivers[driver.kind] = driver  # type: ignore[attr-defined]

    def driver_for(self, kind: str) -> D:
        """The driver for ``kind``; raises KvpodError naming the module it looked for when there is none."""
        if kind in self._drivers:
            return self._drivers[kind]
        if not _KIND_RE.match(kind):
            raise KvpodError(f"{self.noun} kind {kind!r} is not a valid driver name")
        module_name = f"{self.package}.{kind.replace('-', '_')}.driver"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in (module_name, module_name.rpartition(".")[0]):
                raise
            raise KvpodError(f"no driver for {self.noun} kind {kind!r} (expected a module {module_name})") from None
        driver = getattr(module, "DRIVER", None)
        if not isinstance(driver, self.base) or driver.kind != kind:
            raise KvpodError(f"{module_name} does not define DRIVER, a {self.base.__name__} for kind {kind!r}")
        self._drivers[kind] = driver
        return driver
