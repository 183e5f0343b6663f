"""lmmr1's multi-turn environments (football, Sokoban) as an OpenRLHF 0.11.2 agent executor.

    --train.agent_func_path <path of this file> --data.label_key meta

OpenRLHF loads this file by path (`_load_agent_executor` in openrlhf/trainer/ray/vllm_engine.py: the module
must define `AgentExecutor`, a subclass of `AgentExecutorBase`), makes one per rollout actor, and calls
`execute(prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images)` once per sample.
`llm_engine` is the rollout actor: `await llm_engine.generate(prompt_token_ids, sampling_params,
multi_modal_data={"image": [PIL images]})` returns vLLM's RequestOutput. `hf_tokenizer` is the model's
processor (OpenRLHF's `get_tokenizer` returns the AutoProcessor for a VLM).

Label: a JSON object, as a string (the `meta` column data_pipelines.to_openrlhf writes) or a mapping:

    {"env": "sokoban", "level": ["#######", "#@ $ .#", "#######"]}        a given level (XSB rows)
    {"env": "sokoban", "seed": 3, "preset": "small-v1"}                    a generated level
    {"env": "football", "scenario": "academy_empty_goal", "seed": 7, "prefix": []}
    {..., "config": {"max_turns": 8}}                                      env config overrides (optional)

`env` is a name in lmmr1's env registry. Every other key but `config` is the episode's record meta, which
`env.reset` reads, so the `meta` of the football and Sokoban task records (data_pipelines.football_tasks,
sokoban_tasks) is a label as it is. `config` sets fields of the env's config dataclass (FootballConfig,
SokobanConfig) for this row, over the run-wide defaults in the environment variable LMMR1_ENV_CONFIG
(a JSON object: {"football": {"max_turns": 10}, "sokoban": {"tile_px": 32}}). In a mapping label, keys
whose value is None are dropped (HF `datasets` fills absent struct keys with None). An empty label, a label
that is not a JSON object, a missing or unknown `env`, an unknown `config` field, or a meta the env cannot
start from is a ValueError that names the field.

One episode (the numbered steps of `AgentExecutor.execute`):
    1. The row's prompt (OpenRLHF applied the chat template) and images are the first user turn: the
       record's first observation. The env is reset on the label's meta.
    2. The model replies: `llm_engine.generate(tokens so far, images so far)`, with at most
       `sampling_params.max_tokens` (--rollout.max_new_tokens) tokens per reply (None: the rest of the
       context), never past max_length.
    3. The whole reply goes to `env.step`, which parses the action (lmmr1.envs.base.action_text); a reply
       without one is the env's counted no-op with its format penalty.
    4. Unless the env says done, its observation becomes the next user turn. The text is: the end of the
       reply's turn (the chat template's end-of-turn text, without the <|im_end|> the model generated; all
       of it when the reply was cut by the length limit), the template's user turn (one image placeholder
       per image, then the observation's text) and the assistant header. The processor expands the
       placeholders, and its pixel tensors join mm_train_inputs. The next turn starts only when the
       observation and a whole reply budget fit in max_length; otherwise the episode ends there.
Only the model's tokens are trained: `action_ranges` holds one [start, end) span per reply, and the prompt
and every observation are context.

The returned dict is what OpenRLHF's SamplesGenerator._process_response_into_experience reads:
    prompt, label, images    echoed (images: the row's, as upstream's executors do)
    observation_tokens       prompt + reply + observation + reply + ... (image pads expanded)
    action_ranges            [(start, end)] of each reply in observation_tokens
    mm_train_inputs          the processor's pixel_values + image_grid_thw of every image shown, in order
    rollout_log_probs        vLLM's log-prob per token (0.0 on context tokens); None unless
                             sampling_params.logprobs is set
    truncated                the last reply hit the length limit (upstream's meaning)
    reward                   the env's accumulated reward: the sum of its step rewards (MageBench's metric)
    scores                   1.0 if the outcome is "correct", else 0.0 (OpenRLHF's dynamic filtering)
    extra_logs               outcome indicators and episode counts (below), floats

Outcomes, logged as lmmr1.rewards.openrlhf_func logs them (reward_correct, reward_wrong, reward_uncertain,
reward_invalid: one is 1.0), so that lmmr1's experience maker reads them from `Experience.info`:
    correct    Sokoban: the level is solved. Football: we scored a goal.
    invalid    no reply of the episode named a valid action
    wrong      otherwise; uncertain never (an env has no abstention)
and episode_turns, episode_invalid_turns, episode_done (1.0 when the env ended the episode), and
episode_context_full (1.0 when max_length ended it).

Why not upstream's MultiTurnAgentExecutor + AgentInstanceBase: its loop sets max_tokens to the whole
remaining context on every turn (no per-reply budget); its step() sees the reply's text only, so it cannot
tell a reply the model ended with <|im_end|> from one the length limit cut, and cannot close that turn
correctly; and it has no end-of-episode hook to release an env (a football engine). Where it fits (every
reply ended by the model), this executor produces the same tokens, action ranges and pixel tensors; the
tests compare the two.

Env calls (reset, step) run one at a time on one worker thread per executor: vLLM's event loop keeps
serving the other episodes meanwhile, and gfootball's engine is never used from two threads. Idle envs are
kept and reused by the next episode with the same env and config, because a football engine takes about
0.5 s to start.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from openrlhf.utils.agent import AgentExecutorBase
from openrlhf.utils.vlm_utils import accumulate_mm_inputs, process_prompt_with_images

from lmmr1.envs import get_env
from lmmr1.envs.base import Env, Observation

ENV_CONFIG_VARIABLE = "LMMR1_ENV_CONFIG"

# What "correct" means per env, read from the `info` of the episode's last step.
SUCCESS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "sokoban": lambda info: bool(info["solved"]),
    "football": lambda info: int(info["score"][0]) > 0,
}
OUTCOMES = ("correct", "wrong", "uncertain", "invalid")

_ASSISTANT_MARK = "\x00lmmr1-reply\x00"  # stands for a reply's content when reading the chat template


# ------------------------------------------------------------------------------------------------ labels

class EpisodeLabel(NamedTuple):
    """A parsed label: which env, its config, and the record meta its `reset` reads. (Not a dataclass:
    OpenRLHF executes this file without a sys.modules entry, where @dataclass cannot resolve string
    annotations.)"""

    env: str
    config: Any
    meta: dict[str, Any]

    @property
    def pool_key(self) -> str:
        return self.env + json.dumps(dataclasses.asdict(self.config), sort_keys=True, default=str)


def _label_error(label: Any, problem: str) -> ValueError:
    text = label if isinstance(label, str) else repr(label)
    text = text if len(text) <= 300 else text[:300] + "..."
    return ValueError(f"lmmr1 agent executor: label {problem} (label: {text}). A label is a JSON object such "
                      f'as {{"env": "sokoban", "seed": 3}}; see lmmr1/distributed/agent_executor.py')


def _env_config_defaults(name: str) -> dict[str, Any]:
    raw = os.environ.get(ENV_CONFIG_VARIABLE, "").strip()
    if not raw:
        return {}
    try:
        defaults = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{ENV_CONFIG_VARIABLE} is not JSON ({e}): {raw[:300]}") from None
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ValueError(f"{ENV_CONFIG_VARIABLE} must be a JSON object of env name -> config fields, e.g. "
                         f'{{"football": {{"max_turns": 10}}}}; got {raw[:300]}')
    return dict(defaults.get(name, {}))


def make_env_config(name: str, overrides: Mapping[str, Any], label: Any = None) -> Any:
    """The config dataclass of env `name`: LMMR1_ENV_CONFIG's defaults for it, then `overrides`."""
    config_class = get_env(name).config_class
    fields = {f.name for f in dataclasses.fields(config_class)}
    values = {**_env_config_defaults(name), **overrides}
    for key in values:
        if key not in fields:
            raise _label_error(label, f"field `config.{key}` is not a {config_class.__name__} field (nor in "
                                      f"{ENV_CONFIG_VARIABLE}); valid fields: {sorted(fields)}")
    try:
        return config_class(**values)
    except (TypeError, ValueError) as e:
        raise _label_error(label, f"field `config` is not a valid {config_class.__name__}: {e}") from None


def parse_label(label: Any) -> EpisodeLabel:
    """A row's label (module docstring) -> EpisodeLabel, or a ValueError that names the field."""
    if isinstance(label, str):
        if not label.strip():
            raise _label_error(label, "is empty: pass the column holding the episode's JSON as "
                                      "--data.label_key (data_pipelines.to_openrlhf writes it as `meta`)")
        try:
            fields = json.loads(label)
        except json.JSONDecodeError as e:
            raise _label_error(label, f"is not JSON ({e})") from None
    elif isinstance(label, Mapping):
        fields = {k: v for k, v in label.items() if v is not None}
    else:
        raise _label_error(label, f"is a {type(label).__name__}, not a JSON object")
    if not isinstance(fields, dict):
        raise _label_error(label, f"is JSON but a {type(fields).__name__}, not an object")
    name = fields.get("env")
    if not isinstance(name, str) or not name:
        raise _label_error(label, "has no field `env` (the env's name: football or sokoban)")
    try:
        get_env(name)
    except KeyError as e:
        raise _label_error(label, f"field `env`: {e.args[0]}") from None
    if name not in SUCCESS:
        raise _label_error(label, f"field `env`: {name!r} has no outcome rule in agent_executor.SUCCESS "
                                  f"(rules for {sorted(SUCCESS)})")
    overrides = fields.get("config", {})
    if not isinstance(overrides, Mapping):
        raise _label_error(label, "field `config` is not an object of env config fields")
    meta = {k: v for k, v in fields.items() if k != "config"}
    return EpisodeLabel(name, make_env_config(name, overrides, label), meta)


# ------------------------------------------------------------------------------------------- chat turns

def turn_end_text(tokenizer) -> str:
    """What the chat template writes after an assistant reply's content ("<|im_end|>\\n" in ChatML)."""
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    head = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": _ASSISTANT_MARK}],
                                         tokenize=False)
    if not full.startswith(head + _ASSISTANT_MARK):
        raise ValueError("lmmr1 agent executor: the chat template does not write an assistant turn as "
                         "`<generation prompt><reply><end of turn>`; cannot continue a conversation with it")
    return full[len(head) + len(_ASSISTANT_MARK):]


def user_turn_text(tokenizer, observation: Observation) -> str:
    """The chat template's user turn for an observation (its images first, then its text), followed by the
    assistant header, as it would follow earlier turns."""
    system = [{"role": "system", "content": "s"}]
    content = [{"type": "image"} for _ in observation.images] + [{"type": "text", "text": observation.text}]
    base = tokenizer.apply_chat_template(system, tokenize=False)
    full = tokenizer.apply_chat_template(system + [{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)
    if not full.startswith(base):
        raise ValueError("lmmr1 agent executor: the chat template rewrites earlier turns when a user turn is "
                         "added; cannot continue a conversation with it")
    return full[len(base):]


def closing_text(turn_end: str, finish_reason: str | None, last_piece: str) -> str:
    """The text that closes a reply's turn: the template's end of turn, less its start when the model
    generated it (the reply stopped on the end-of-turn token, whose text is `last_piece`)."""
    if finish_reason == "stop" and last_piece and turn_end.startswith(last_piece):
        return turn_end[len(last_piece):]
    return turn_end


def _tokenize(hf_tokenizer, text: str, images: Any) -> tuple[list[int], dict | None, list]:
    """Token ids (image pads expanded), the processor's pixel tensors and the PIL images, as upstream's
    executors tokenize (openrlhf.utils.vlm_utils.process_prompt_with_images)."""
    if images and not hasattr(hf_tokenizer, "image_processor"):
        raise ValueError("lmmr1 agent executor: the episode shows images but the rollout tokenizer has no "
                         "image processor (the model is not a VLM); use a VLM or an env config without "
                         "images (football: image='none'; Sokoban: image=false)")
    return process_prompt_with_images(hf_tokenizer, text, images or None)


def _reply_log_probs(output, reply_tokens: list[int]) -> list[float]:
    if output.logprobs is None:
        return [0.0] * len(reply_tokens)
    values = []
    for token, candidates in zip(reply_tokens, output.logprobs):
        logprob = candidates.get(token)
        values.append(logprob.logprob if logprob is not None else 0.0)
    return values


# -------------------------------------------------------------------------------------------------- envs

class EnvPool:
    """Envs of running and finished episodes. Every env call runs on one worker thread, one at a time;
    a finished episode's env waits in `idle` for the next episode with the same env and config."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmmr1-env")
        self.idle: dict[str, list[Env]] = {}

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self, episode: EpisodeLabel, label: Any) -> tuple[Env, Observation]:
        """An env reset on the episode's meta (a ValueError naming the label when it cannot start)."""

        def take_and_reset() -> tuple[Env, Observation]:
            idle = self.idle.get(episode.pool_key)
            env = idle.pop() if idle else get_env(episode.env)(episode.config)
            try:
                return env, env.reset(episode.meta)
            except Exception as e:
                self.idle.setdefault(episode.pool_key, []).append(env)
                raise _label_error(label, f"does not start a {episode.env} episode: "
                                          f"{type(e).__name__}: {e}") from e

        return await self.call(take_and_reset)

    async def release(self, episode: EpisodeLabel, env: Env) -> None:
        await self.call(lambda: self.idle.setdefault(episode.pool_key, []).append(env))

    def close(self) -> None:
        for envs in self.idle.values():
            for env in envs:
                self._thread.submit(env.close)
        self.idle.clear()
        self._thread.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------- executor

class AgentExecutor(AgentExecutorBase):
    """Multi-turn episodes of lmmr1's envs with environment images (module docstring)."""

    def __init__(self) -> None:
        self.envs = EnvPool()

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine,
                      images=None):
        episode = parse_label(label)
        turn_end = turn_end_text(hf_tokenizer)
        reply_budget = sampling_params.max_tokens  # per reply; None: the rest of the context
        reply_room = reply_budget or 1  # what a turn needs free in the context to start

        # 1. The row's prompt and images: the first user turn. The env starts on the label's meta.
        tokens, mm_train_inputs, pil_images = _tokenize(hf_tokenizer, prompt, images)
        if len(tokens) + reply_room > max_length:
            raise ValueError(f"lmmr1 agent executor: the prompt has {len(tokens)} tokens, and a reply of "
                             f"{reply_room} does not fit in max_length {max_length}; an image prompt is never "
                             f"truncated (raise --data.max_len or lower --rollout.max_new_tokens)")
        env, _ = await self.envs.start(episode, label)
        log_probs = [0.0] * len(tokens) if sampling_params.logprobs is not None else None
        action_ranges: list[tuple[int, int]] = []
        total_reward, turns, invalid_turns = 0.0, 0, 0
        truncated = done = context_full = False
        info: dict[str, Any] = {}
        try:
            while True:
                # 2. The model's reply, within the reply budget and the context.
                params = copy.deepcopy(sampling_params)
                params.max_tokens = min(reply_budget or max_length, max_length - len(tokens))
                request_output = await llm_engine.generate(
                    tokens, params, multi_modal_data={"image": pil_images} if pil_images else None)
                output = request_output.outputs[0]
                reply_tokens = list(output.token_ids)
                action_ranges.append((len(tokens), len(tokens) + len(reply_tokens)))
                tokens = tokens + reply_tokens
                if log_probs is not None:
                    log_probs += _reply_log_probs(output, reply_tokens)
                truncated = output.finish_reason == "length"
                last_piece = hf_tokenizer.decode(reply_tokens[-1:], skip_special_tokens=False)
                closing = closing_text(turn_end, output.finish_reason, last_piece)
                reply = output.text
                if closing != turn_end and reply.endswith(last_piece):
                    reply = reply[:-len(last_piece)]

                # 3. The env plays the reply.
                observation, reward, done, info = await self.envs.call(env.step, reply)
                total_reward += float(reward)
                turns += 1
                invalid_turns += 0 if info["valid"] else 1
                if done:
                    break

                # 4. Its observation is the next user turn, if it and a whole reply fit.
                feedback, new_mm, new_images = _tokenize(
                    hf_tokenizer, closing + user_turn_text(hf_tokenizer, observation), observation.images)
                if len(tokens) + len(feedback) + reply_room > max_length:
                    context_full = True
                    break
                tokens = tokens + feedback
                mm_train_inputs = accumulate_mm_inputs(mm_train_inputs, new_mm)
                pil_images = pil_images + new_images
                if log_probs is not None:
                    log_probs += [0.0] * len(feedback)
        finally:
            await self.envs.release(episode, env)

        outcome = ("correct" if SUCCESS[episode.env](info) else "invalid" if invalid_turns == turns
                   else "wrong")
        extra_logs = {f"reward_{name}": float(outcome == name) for name in OUTCOMES}
        extra_logs.update(episode_turns=float(turns), episode_invalid_turns=float(invalid_turns),
                          episode_done=float(done), episode_context_full=float(context_full))
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "mm_train_inputs": mm_train_inputs,
            "observation_tokens": tokens,
            "action_ranges": action_ranges,
            "rollout_log_probs": log_probs,
            "truncated": truncated,
            "reward": total_reward,
            "scores": 1.0 if outcome == "correct" else 0.0,
            "extra_logs": extra_logs,
        }
