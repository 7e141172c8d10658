"""Skip pydantic's plugin discovery: the installer uses no pydantic plugin.

The first validator pydantic builds imports `pydantic.plugin._loader`, which imports
`importlib.metadata` (email, zipfile, csv, socket, ...) and reads the entry points of every
installed distribution to look for `pydantic` plugins: about 25 ms of the ~250 ms cold start of
`clawdie-setup check`, for nothing (no package in uv.lock provides one). `PYDANTIC_DISABLE_PLUGINS`
skips the scan but not that import, so the loader is replaced by one that finds no plugin.

Call before the first model or TypeAdapter is built. If the real loader is already imported it is
left alone. To use a pydantic plugin (say, for tracing), remove the call in `setup_model`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from types import ModuleType

_LOADER = "pydantic.plugin._loader"


def _no_plugins() -> Iterable[object]:
    return ()


def skip_plugin_discovery() -> None:
    """Make pydantic find no plugins, without importing `importlib.metadata`."""
    if _LOADER in sys.modules:
        return
    loader = ModuleType(_LOADER, "pydantic plugin loader that finds no plugins (installer)")
    loader.__dict__["get_plugins"] = _no_plugins
    sys.modules[_LOADER] = loader
