"""lmmr1's agent executor file (lmmr1/distributed/agent_executor.py) loaded by OpenRLHF 0.11.2's own loader,
playing real Sokoban and real football (gfootball) episodes through the tiny Qwen2.5-VL's real processor,
with a scripted stand-in for vLLM.

What is real here: the executor file loaded by OpenRLHF's `_load_agent_executor` (its source, taken from the
installed openrlhf); the processor, as OpenRLHF's `get_tokenizer` builds it; OpenRLHF's dataset
preprocessing of a row written by lmmr1's data pipelines; the envs; upstream's MultiTurnAgentExecutor in the
comparison test. What is not: vLLM. `ScriptedVLLMStandIn` answers OpenRLHF's `llm_engine.generate` call with
scripted replies (the Sokoban solver's moves, the football env's scripted attacker), and
`SamplingParamsStandIn` replaces vllm.SamplingParams (importing vLLM takes ~30 s on this machine). The last
test (marked slow) runs the session's real in-process vLLM instead, to check that vLLM expands every turn's
prompt to the executor's tokens.
"""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lmmr1.envs.sokoban import MOVES, SokobanConfig, SokobanEnv, Level, push, render_level

EXECUTOR_FILE = Path(__file__).parents[1] / "lmmr1" / "distributed" / "agent_executor.py"
RETURN_KEYS = {"prompt", "label", "images", "mm_train_inputs", "observation_tokens", "action_ranges",
               "rollout_log_probs", "truncated", "reward", "scores", "extra_logs"}
EXTRA_LOG_KEYS = {"reward_correct", "reward_wrong", "reward_uncertain", "reward_invalid", "episode_turns",
                  "episode_invalid_turns", "episode_done", "episode_context_full"}

# A corridor: the player, a box two cells left of its target. The solver's plan is Right x 3; the env scores
# -0.1 (step), -0.1 (push), -0.1 + 1 (box on target) + 10 (solved) = 10.7.
CORRIDOR = ["#######",
            "#@ $ .#",
            "#######"]
CORRIDOR_REWARD = 10.7
CORRIDOR_LABEL = json.dumps({"env": "sokoban", "level": CORRIDOR, "config": {"tile_px": 16}})


class SamplingParamsStandIn:
    """STAND-IN for vllm.SamplingParams: the fields OpenRLHF's SamplesGenerator._dispatch_prompts_to_vllm
    sets, with its defaults (max_tokens=None means "the rest of the context")."""

    def __init__(self, max_tokens=None, logprobs=None):
        self.temperature, self.top_p, self.top_k = 1.0, 1.0, -1
        self.max_tokens, self.min_tokens, self.logprobs = max_tokens, 1, logprobs
        self.skip_special_tokens = False


class ScriptedVLLMStandIn:
    """STAND-IN for vLLM. OpenRLHF passes its rollout actor as `llm_engine`; the actor's
    `async generate(prompt_token_ids, sampling_params, multi_modal_data=None)` runs vLLM's AsyncLLMEngine and
    returns a RequestOutput. This class has the same method and returns the same shape (`.outputs[0]` with
    token_ids, text, finish_reason, logprobs), but the reply is the next scripted one: its tokens and
    <|im_end|> (finish_reason "stop"; the text without <|im_end|>, as vLLM reports a stop on the EOS token),
    or its first max_tokens tokens (finish_reason "length"). Log-probs are -(i + 1) / 100 for the i-th
    token. Like vLLM, it refuses a prompt whose image spans do not match the images given. Every call is
    recorded in `calls`."""

    def __init__(self, processor, replies):
        self.tokenizer = processor.tokenizer
        self.replies = list(replies)
        self.calls: list[dict] = []
        self.vision_start = self.tokenizer.convert_tokens_to_ids("<|vision_start|>")
        self.end_of_turn = self.tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        images = list((multi_modal_data or {}).get("image", []))
        spans = list(prompt_token_ids).count(self.vision_start)
        if spans != len(images):
            raise ValueError(f"{spans} image spans in the prompt, {len(images)} images given")
        reply = self.replies[len(self.calls)]
        ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"] + [self.end_of_turn]
        finish = "stop"
        if len(ids) > sampling_params.max_tokens:
            ids, finish = ids[:sampling_params.max_tokens], "length"
        text = self.tokenizer.decode(ids if finish == "length" else ids[:-1], skip_special_tokens=False)
        logprobs = None
        if sampling_params.logprobs is not None:
            logprobs = [{token: SimpleNamespace(logprob=-(i + 1) / 100)} for i, token in enumerate(ids)]
        self.calls.append({"prompt": list(prompt_token_ids), "images": images, "ids": ids,
                           "max_tokens": sampling_params.max_tokens})
        await asyncio.sleep(0)  # let other episodes run, as awaiting vLLM does
        output = SimpleNamespace(token_ids=ids, text=text, finish_reason=finish, logprobs=logprobs)
        return SimpleNamespace(outputs=[output])


def load_like_openrlhf(path: Path):
    """OpenRLHF's own `_load_agent_executor`, compiled from the installed openrlhf/trainer/ray/vllm_engine.py
    (importing that module imports vLLM), run on `path`."""
    import openrlhf.utils.agent as agent

    source = Path(agent.__file__).parents[1] / "trainer" / "ray" / "vllm_engine.py"
    tree = ast.parse(source.read_text())
    loader = next(node for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name == "_load_agent_executor")
    namespace = {"AgentExecutorBase": agent.AgentExecutorBase}
    exec(compile(ast.Module(body=[loader], type_ignores=[]), str(source), "exec"), namespace)
    return namespace["_load_agent_executor"](str(path))


@pytest.fixture(scope="module")
def executor(openrlhf_cpu):
    loaded = load_like_openrlhf(EXECUTOR_FILE)
    yield loaded
    loaded.envs.close()


@pytest.fixture(scope="module")
def processor(openrlhf_cpu, tiny_model_dir):
    from openrlhf.utils.utils import get_tokenizer

    return get_tokenizer(str(tiny_model_dir), None)  # OpenRLHF's hf_tokenizer: the AutoProcessor for a VLM


def answer(action: str) -> str:
    return f"<think>the box goes there</think><answer>{action}</answer>"


def corridor_prompt(processor) -> tuple[str, list]:
    from lmmr1.envs.sokoban import prompt_messages

    image = render_level(Level.from_rows(CORRIDOR), tile_px=16)
    return processor.apply_chat_template(prompt_messages("interactive"), tokenize=False,
                                         add_generation_prompt=True), [image]


def play(executor, prompt, label, engine, processor, *, images, max_length=4096, max_tokens=None, logprobs=None):
    return asyncio.run(executor.execute(prompt, label, SamplingParamsStandIn(max_tokens, logprobs), max_length,
                                        processor, engine, images=images))


def image_spans(tokens: list[int], processor) -> list[int]:
    """The number of <|image_pad|> tokens in each image span, in order."""
    pad = processor.image_token_id
    spans, run = [], 0
    for token in tokens + [-1]:
        if token == pad:
            run += 1
        elif run:
            spans.append(run)
            run = 0
    return spans


def decoded(processor, tokens) -> str:
    return processor.tokenizer.decode(tokens, skip_special_tokens=False)


# ------------------------------------------------------------------------------------------------ Sokoban

def test_sokoban_task_record_solved_by_the_solvers_plan(executor, processor, tmp_path, monkeypatch):
    from openrlhf.datasets.prompts_dataset import preprocess_data
    from openrlhf.utils.vlm_utils import process_prompt_with_images

    from data_pipelines.sokoban_tasks import SokobanTasksConfig, generate
    from data_pipelines.to_openrlhf import convert_records_file

    # A row as a user makes it: one interactive Sokoban task, converted to OpenRLHF's JSONL, read by OpenRLHF's
    # preprocessing with --data.label_key meta. The env draws boards at 16 px per cell, as the task's image.
    monkeypatch.setenv("LMMR1_ENV_CONFIG", json.dumps({"sokoban": {"tile_px": 16}}))
    records = generate(SokobanTasksConfig(out=str(tmp_path), n=1, seed=0, kind="interactive", tile_px=16))
    convert_records_file(records, tmp_path / "openrlhf.jsonl")
    row = json.loads((tmp_path / "openrlhf.jsonl").read_text().splitlines()[0])
    prompt, label = preprocess_data(row, input_key="messages", label_key="meta",
                                    apply_chat_template=processor.apply_chat_template)
    meta = json.loads(label)
    plan = row["answer"].split(", ")  # the solver's shortest plan: Up, Right, Right, Up, Up, Left, Down
    assert len(plan) == meta["optimal_moves"] == 7

    engine = ScriptedVLLMStandIn(processor, [answer(a) for a in plan])
    result = play(executor, prompt, label, engine, processor, images=row["images"], max_tokens=32, logprobs=1)

    assert set(result) == RETURN_KEYS
    assert (result["prompt"], result["label"], result["images"]) == (prompt, label, row["images"])
    # The env's exact reward: 7 steps of -0.1, +1 for each of the 2 boxes reaching a target, +10 solved = 11.3,
    # the full task reward the pipeline recorded.
    assert result["reward"] == pytest.approx(11.3, abs=1e-9) and meta["full_task_reward"] == 11.3
    assert result["scores"] == 1.0 and result["truncated"] is False
    assert set(result["extra_logs"]) == EXTRA_LOG_KEYS
    assert result["extra_logs"] == {"reward_correct": 1.0, "reward_wrong": 0.0, "reward_uncertain": 0.0,
                                    "reward_invalid": 0.0, "episode_turns": 7.0, "episode_invalid_turns": 0.0,
                                    "episode_done": 1.0, "episode_context_full": 0.0}

    # Only the model's tokens are actions: each range is exactly one scripted reply (+ its <|im_end|>), and
    # the tokens before the first are the row's prompt as upstream's executors tokenize it.
    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    assert len(ranges) == len(engine.calls) == 7
    for (start, end), call in zip(ranges, engine.calls):
        assert tokens[start:end] == call["ids"] and call["prompt"] == tokens[:start]
        assert call["max_tokens"] == 32  # the per-reply budget, never the whole context
    prompt_tokens, prompt_mm, _ = process_prompt_with_images(processor, prompt, row["images"])
    assert tokens[:ranges[0][0]] == prompt_tokens
    assert ranges[-1][1] == len(tokens)  # nothing follows the last reply: the env ended the episode
    # Between replies: the next user turn (the first move, Up, pushed a box onto a target), closed after the
    # model's own <|im_end|>.
    between = decoded(processor, tokens[ranges[0][1]:ranges[1][0]])
    pads = "<|image_pad|>" * image_spans(tokens[ranges[0][1]:ranges[1][0]], processor)[0]
    assert between == (f"\n<|im_start|>user\n<|vision_start|>{pads}<|vision_end|>Current board: 1 of 2 boxes on "
                       f"targets, 1 of 120 steps used.<|im_end|>\n<|im_start|>assistant\n")

    # One image per turn: the row's, then the env's board after each move; its tokens match its pixels.
    level = Level.from_rows(meta["level"])
    for turn, call in enumerate(engine.calls):
        assert len(call["images"]) == turn + 1
        assert call["images"][-1].tobytes() == render_level(level, tile_px=16).tobytes()
        level, _, _ = push(level, MOVES[plan[turn].lower()])
    grid = result["mm_train_inputs"]["image_grid_thw"]
    assert grid.shape == (7, 3) and torch.equal(grid[0], prompt_mm["image_grid_thw"][0])
    assert image_spans(tokens, processor) == (grid.prod(-1) // 4).tolist()
    assert result["mm_train_inputs"]["pixel_values"].shape[0] == int(grid.prod(-1).sum())

    # vLLM's log-probs on the reply tokens, 0 on the context.
    expected = [0.0] * len(tokens)
    for start, end in ranges:
        expected[start:end] = [-(i + 1) / 100 for i in range(end - start)]
    assert result["rollout_log_probs"] == expected


def test_same_tokens_as_upstream_multiturn_executor(executor, processor):
    # Where upstream's MultiTurnAgentExecutor fits (every reply ended by the model), it and lmmr1's executor
    # build the same sequence, action ranges and pixel tensors. The upstream AgentInstance writes the next
    # user turn in ChatML by hand.
    from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

    class UpstreamSokobanInstance(AgentInstanceBase):
        def __init__(self):
            self.env = SokobanEnv(SokobanConfig(tile_px=16))

        async def reset(self, states, **kwargs):
            self.env.reset(json.loads(states["label"]))
            return {"observation": states["observation"]}

        async def step(self, states, **kwargs):
            observation, reward, done, info = self.env.step(states["action_text"])
            feedback = "" if done else ("\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                                        f"{observation.text}<|im_end|>\n<|im_start|>assistant\n")
            return {"rewards": torch.tensor(reward, dtype=torch.float64), "scores": torch.tensor(float(info["solved"])),
                    "environment_feedback": feedback, "environment_images": None if done else observation.images,
                    "done": done, "extra_logs": {}}

    prompt, images = corridor_prompt(processor)
    replies = [answer("Right")] * 3
    ours = play(executor, prompt, CORRIDOR_LABEL, ScriptedVLLMStandIn(processor, replies), processor, images=images)
    upstream = asyncio.run(MultiTurnAgentExecutor(UpstreamSokobanInstance).execute(
        prompt, CORRIDOR_LABEL, SamplingParamsStandIn(), 4096, processor, ScriptedVLLMStandIn(processor, replies),
        images=images))

    assert ours["observation_tokens"] == upstream["observation_tokens"]
    assert ours["action_ranges"] == upstream["action_ranges"]
    assert ours["mm_train_inputs"].keys() == upstream["mm_train_inputs"].keys()
    for key, value in ours["mm_train_inputs"].items():
        assert torch.equal(value, upstream["mm_train_inputs"][key]), key
    assert ours["reward"] == pytest.approx(upstream["reward"], abs=1e-12)
    assert ours["reward"] == pytest.approx(CORRIDOR_REWARD, abs=1e-9)
    assert ours["rollout_log_probs"] is None and ours["scores"] == 1.0


def test_a_cut_reply_is_closed_and_the_context_bounds_the_episode(executor, processor):
    prompt, images = corridor_prompt(processor)
    rambling = "<think>" + "and then " * 40  # 125 tokens, over the 32-token reply budget: cut, no action
    replies = [rambling] + [answer("Right")] * 3
    engine = ScriptedVLLMStandIn(processor, replies)
    result = play(executor, prompt, CORRIDOR_LABEL, engine, processor, images=images, max_tokens=32)

    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    # The cut reply is 32 tokens without <|im_end|>: the executor closes its turn with the template's
    # "<|im_end|>\n"; after a reply the model ended, only "\n" is added.
    assert [end - start for start, end in ranges][0] == 32
    assert decoded(processor, tokens[ranges[0][1]:]).startswith("<|im_end|>\n<|im_start|>user\n<|vision_start|>")
    assert decoded(processor, tokens[ranges[1][1] - 1:]).startswith("<|im_end|>\n<|im_start|>user\n")
    assert tokens[ranges[1][1] - 1] == engine.end_of_turn and ranges[1][1] - ranges[1][0] == len(engine.calls[1]["ids"])
    # The cut reply is the env's no-op with its 0.5 format penalty; the plan still solves the level.
    assert result["reward"] == pytest.approx(CORRIDOR_REWARD - 0.5, abs=1e-9)
    assert result["extra_logs"]["episode_invalid_turns"] == 1.0 and result["extra_logs"]["reward_correct"] == 1.0
    assert result["truncated"] is False  # the last reply ended properly

    # Same episode in a context that holds the third turn's observation but not a whole reply after it: the
    # episode ends after two replies, before that observation, at most max_length tokens long.
    third_observation = ranges[2][0] - ranges[1][1]
    max_length = ranges[1][1] + third_observation + 32 - 1
    engine = ScriptedVLLMStandIn(processor, replies)
    short = play(executor, prompt, CORRIDOR_LABEL, engine, processor, images=images, max_tokens=32,
                 max_length=max_length)
    assert short["observation_tokens"] == tokens[:ranges[1][1]] and short["action_ranges"] == ranges[:2]
    assert short["reward"] == pytest.approx(-0.5 - 0.1, abs=1e-9)  # the no-op, then one step
    assert short["extra_logs"]["episode_context_full"] == 1.0 and short["extra_logs"]["episode_done"] == 0.0
    assert short["extra_logs"]["reward_wrong"] == 1.0 and short["scores"] == 0.0


def test_concurrent_episodes_share_an_executor_and_reuse_envs(executor, processor):
    # OpenRLHF runs the n samples of a prompt as concurrent execute() calls on one executor.
    prompt, images = corridor_prompt(processor)
    engines = [ScriptedVLLMStandIn(processor, [answer("Right")] * 3) for _ in range(3)]

    async def three():
        return await asyncio.gather(*(executor.execute(prompt, CORRIDOR_LABEL, SamplingParamsStandIn(), 4096,
                                                       processor, engine, images=images) for engine in engines))

    results = asyncio.run(three())
    assert all(r["observation_tokens"] == results[0]["observation_tokens"] for r in results)
    assert [r["reward"] for r in results] == pytest.approx([CORRIDOR_REWARD] * 3, abs=1e-9)
    idle = [env for envs in executor.envs.idle.values() for env in envs if isinstance(env, SokobanEnv)]
    play(executor, prompt, CORRIDOR_LABEL, ScriptedVLLMStandIn(processor, [answer("Right")] * 3), processor,
         images=images)
    assert [env for envs in executor.envs.idle.values() for env in envs if isinstance(env, SokobanEnv)] == idle


# ----------------------------------------------------------------------------------------------- football

def test_football_episode_scores_with_the_scripted_attacker(executor, processor):
    pytest.importorskip("gfootball")
    from lmmr1.envs import play_episode
    from lmmr1.envs.football import FootballConfig, FootballEnv, prompt_messages, scripted_action

    # The reference: the env played directly by the scripted attacker (lmmr1's graded scenario 1, seed 0:
    # run right, run top-right twice, shoot: a goal in 4 turns). The executor must replay the same game.
    config = {"image_size": [224, 112], "max_turns": 8}
    meta = {"env": "football", "scenario": "lmmr1_1_open_goal_angle", "seed": 0, "prefix": []}
    reference_env = FootballEnv(FootballConfig(image_size=(224, 112), max_turns=8))
    first = reference_env.reset(meta)
    replies, seen = [], []

    def attacker(observation):
        seen.append(observation.images[0].tobytes())
        replies.append(f"<think>go to goal</think><answer>{scripted_action(reference_env.raw_observation)}</answer>")
        return replies[-1]

    reference = play_episode(reference_env, meta, attacker)
    reference_env.close()
    assert reference.turns == 4 and reference.infos[-1]["done_reason"] == "goal"

    prompt = processor.apply_chat_template(prompt_messages(first.text), tokenize=False, add_generation_prompt=True)
    engine = ScriptedVLLMStandIn(processor, replies)
    label = json.dumps({**meta, "config": config})
    result = play(executor, prompt, label, engine, processor, images=first.images, max_tokens=32, logprobs=1)

    assert set(result) == RETURN_KEYS and set(result["extra_logs"]) == EXTRA_LOG_KEYS
    assert result["reward"] == reference.total_reward  # the same game, bit for bit
    assert result["scores"] == 1.0 and result["extra_logs"]["reward_correct"] == 1.0
    assert result["extra_logs"]["episode_turns"] == 4.0 and result["extra_logs"]["episode_done"] == 1.0
    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    for (start, end), call in zip(ranges, engine.calls, strict=True):
        assert tokens[start:end] == call["ids"]
    # The model saw the env's picture of every turn, in order (the first is the row's image).
    assert [call["images"][-1].tobytes() for call in engine.calls] == seen
    assert [len(call["images"]) for call in engine.calls] == [1, 2, 3, 4]
    grid = result["mm_train_inputs"]["image_grid_thw"]
    assert grid.shape == (4, 3) and image_spans(tokens, processor) == (grid.prod(-1) // 4).tolist()
    assert len(result["rollout_log_probs"]) == len(tokens)


# ------------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("label, message", [
    ("", r"label is empty: pass .* --data.label_key"),
    ("{not json", r"label is not JSON"),
    ('["sokoban", 3]', r"label is JSON but a list, not an object"),
    ('{"seed": 3}', r"label has no field `env`"),
    ('{"env": "chess", "seed": 3}', r"label field `env`: unknown env 'chess'; valid envs: \['football', 'sokoban'\]"),
    ('{"env": "sokoban", "seed": 3, "config": {"tile": 8}}', r"label field `config.tile` is not a SokobanConfig field"),
    ('{"env": "football", "config": {"image": "3d"}}', r"label field `config` is not a valid FootballConfig"),
    ('{"env": "sokoban", "preset": "small-v0"}',
     r"label does not start a sokoban episode: KeyError: .*`level`.*`seed`"),
])
def test_a_bad_label_is_a_clear_error_naming_the_field(executor, processor, label, message):
    prompt, images = corridor_prompt(processor)
    engine = ScriptedVLLMStandIn(processor, [])
    with pytest.raises(ValueError, match=message):
        play(executor, prompt, label, engine, processor, images=images)
    assert engine.calls == []


def test_a_bad_env_config_variable_is_a_clear_error(executor, processor, monkeypatch):
    prompt, images = corridor_prompt(processor)
    monkeypatch.setenv("LMMR1_ENV_CONFIG", "{sokoban: 1}")
    with pytest.raises(ValueError, match=r"LMMR1_ENV_CONFIG is not JSON"):
        play(executor, prompt, CORRIDOR_LABEL, ScriptedVLLMStandIn(processor, []), processor, images=images)


# ------------------------------------------------------------------------------------------- real vLLM

class RolloutActorGenerate:
    """What OpenRLHF's RolloutRayActor.generate does (collapse each image's pads to one placeholder,
    `TokensPrompt` + `multi_modal_data`), on the session's synchronous in-process vllm.LLM. Records vLLM's
    outputs."""

    def __init__(self, llm, processor):
        self.llm, self.outputs = llm, []
        self.pads = {processor.image_token_id, processor.video_token_id}

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        from openrlhf.utils.vlm_utils import dedup_media_tokens
        from vllm.inputs import TokensPrompt

        prompt = TokensPrompt(prompt_token_ids=dedup_media_tokens(prompt_token_ids, self.pads))
        if multi_modal_data:
            prompt["multi_modal_data"] = multi_modal_data
        output = self.llm.generate([prompt], sampling_params, use_tqdm=False)[0]
        self.outputs.append((list(prompt_token_ids), output))
        return output


@pytest.mark.slow
def test_vllm_expands_every_turn_to_the_executors_tokens(executor, processor, tiny_vllm):
    # Real vLLM (CPU, the tiny random model, 2 images per prompt at most): each turn's prompt, pads collapsed,
    # is expanded by vLLM's own processor back to the executor's sequence token for token, and the reply
    # tokens and log-probs the executor keeps are vLLM's. The random replies name no action: 2 no-ops.
    from vllm import SamplingParams

    pads = {processor.image_token_id, processor.video_token_id}
    allowed = [i for i in range(len(processor.tokenizer)) if i not in pads]  # a generated pad has no pixels
    params = SamplingParams(max_tokens=16, temperature=1.0, logprobs=1, seed=0, skip_special_tokens=False,
                            allowed_token_ids=allowed)
    prompt, images = corridor_prompt(processor)
    label = json.dumps({"env": "sokoban", "level": CORRIDOR, "config": {"tile_px": 16, "max_turns": 2}})
    engine = RolloutActorGenerate(tiny_vllm, processor)
    result = asyncio.run(executor.execute(prompt, label, params, 2048, processor, engine, images=images))

    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    assert len(engine.outputs) == len(ranges) == 2
    for (start, end), (sent, output) in zip(ranges, engine.outputs):
        assert list(output.prompt_token_ids) == sent == tokens[:start]
        completion = output.outputs[0]
        assert tokens[start:end] == list(completion.token_ids)
        assert result["rollout_log_probs"][start:end] == [step[token].logprob for token, step
                                                         in zip(completion.token_ids, completion.logprobs)]
    assert result["mm_train_inputs"]["image_grid_thw"].shape == (2, 3)
    assert result["extra_logs"]["episode_turns"] == 2.0 and result["extra_logs"]["reward_invalid"] == 1.0
    assert result["reward"] == pytest.approx(-1.0, abs=1e-12)
