"""The multi-turn environment interface (DESIGN.md, "The pieces"), shared by the local engine, the
OpenRLHF agent executor and the evaluation harness:

    env = get_env("football")(FootballConfig(...))
    observation = env.reset(record)                 # Observation(text, images): the first user turn
    observation, reward, done, info = env.step(action_text)   # the model's whole reply, parsed by the env
    env.close()

`record` is a `lmmr1.data.records.Record` (or its dict form); the env reads what it needs from
`record.meta` (a scenario and seed, a Sokoban level, ...). `action_text` is the model's raw reply: the env
parses the action out of it, and text it cannot parse is a counted no-op with the env's format penalty.
`info` always holds `valid` (the reply parsed), `action` (what was done, or None) and `components` (the
reward split into named parts that add up to `reward`).

Records of env tasks carry ENV_SCORED as their answer: they are scored by their environment, not against
a gold string.
"""

from __future__ import annotations

import re

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

# The `answer` of a record scored by its environment (a Record needs a non-empty answer).
ENV_SCORED = "[scored by the environment]"


@dataclass(frozen=True)
class Observation:
    """What the model sees on one turn: text and zero or more images (in the order they are shown)."""

    text: str
    images: list[Image.Image] = field(default_factory=list)


StepResult = tuple[Observation, float, bool, dict[str, Any]]


@runtime_checkable
class Env(Protocol):
    """A multi-turn task (see the module docstring)."""

    def reset(self, record: Any) -> Observation: ...

    def step(self, action_text: str) -> StepResult: ...

    def close(self) -> None: ...


def record_meta(record: Any) -> Mapping[str, Any]:
    """The `meta` of a Record, of its dict form, or of a bare meta mapping (a mapping without "meta")."""
    if hasattr(record, "meta"):
        return record.meta
    if isinstance(record, Mapping):
        if "messages" in record or "meta" in record:
            return record.get("meta") or {}
        return record
    raise TypeError(f"expected a Record or a mapping, got {type(record).__name__}")


@dataclass(frozen=True)
class EpisodeResult:
    """One played episode: the metric (`total_reward`, MageBench's accumulated reward) and its parts."""

    total_reward: float
    turns: int
    invalid_turns: int
    done: bool
    components: dict[str, float]
    infos: list[dict[str, Any]]


def play_episode(env: Env, record: Any, policy: Callable[[Observation], str], max_turns: int = 1000
                 ) -> EpisodeResult:
    """Reset `env` on `record`, then ask `policy` for a reply each turn until the env says done (or
    max_turns). Returns the summed reward and the per-component sums."""
    observation = env.reset(record)
    total, turns, invalid, done = 0.0, 0, 0, False
    components: dict[str, float] = {}
    infos: list[dict[str, Any]] = []
    while not done and turns < max_turns:
        observation, reward, done, info = env.step(policy(observation))
        turns += 1
        total += reward
        invalid += 0 if info["valid"] else 1
        for name, value in info["components"].items():
            components[name] = components.get(name, 0.0) + value
        infos.append(info)
    return EpisodeResult(total, turns, invalid, done, components, infos)


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def action_text(reply: str) -> str:
    """The part of a reply that names the action(s): the content of the last <answer>...</answer>; else, after
    MageBench's "# action" marker, its first non-empty line; else the whole reply."""
    answers = _ANSWER.findall(reply)
    if answers:
        return answers[-1]
    if "# action" in reply:
        after = reply.split("# action", 1)[1]
        return next((line for line in after.splitlines() if line.strip()), "")
    return reply
