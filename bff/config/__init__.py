"""Configuration: the model (`Frontend`, the unit of configuration, and `Settings`, one
or more frontends plus the process-wide settings) and how TOML plus `BFF_*` variables
become it (`load`), with the settings table (`known`) and what check-config shows (`report`)."""
