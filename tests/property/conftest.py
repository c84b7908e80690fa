"""Hypothesis profiles for the property tests.

- `default`: what a developer's `pytest` runs (100 examples a property).
- `fuzz`: the bounded fuzz run of CI (`make test` and `make fuzz` select it with
  HYPOTHESIS_PROFILE=fuzz): FUZZ_EXAMPLES (600) examples a property, about 8,900 in all:
  an explicit count, never a wall-clock budget, so the same work on a fast or a loaded
  machine (~15 s of CPU; under a minute of wall time on the shared 2-core machine at a
  load of 6). No per-example deadline; the shrink phase kept. `make fuzz
  FUZZ_EXAMPLES=20000` for a deeper run.
Properties that cost ~15 ms an example run a sixth of the count (`heavy()`); the
whole-stack fuzz (a socket round trip an example) a third.
Run `pytest tests/property --hypothesis-show-statistics` for the per-property counts.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "600"))

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def heavy() -> settings:
    """For properties whose example costs ~15 ms (a whole session record through the
    codec): a sixth of the profile's examples, at least 50."""
    return settings(max_examples=max(50, settings.default.max_examples // 6))
