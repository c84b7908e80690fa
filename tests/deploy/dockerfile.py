"""A small reader of the Dockerfile: instructions (continuations joined, comments
dropped), stages, the runtime ENV, and exec-form arguments."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

__all__ = ["Instruction", "exec_form", "parse", "runtime_env", "stages"]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment inside a continuation is dropped too, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "a continuation runs off the end of the Dockerfile"
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by stage (each group starts with its FROM)."""
    groups: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(ins)
    return groups


def runtime_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV without '=' (legacy form): {ins.args}"
                env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; a shell form fails the test."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value
