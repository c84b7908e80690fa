"""The smallest valid environment of the configuration tests, and how they read the
problems a configuration is refused with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bff.config.load import load_settings
from bff.errors import ConfigError

KEY = "k" * 32
BASE = {
    "BFF_ISSUER": "https://idp.example.com",
    "BFF_CLIENT_ID": "spa",
    "BFF_CLIENT_SECRET": "s3cret-value",
    "BFF_SECRET_KEY": KEY,
}


def problems(env: Mapping[str, str], toml: Mapping[str, Any] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env, toml)
    return info.value.problems
