"""Configuration: the settings model and how TOML plus `BFF_*` variables become it."""
