"""Every one-line warning and every self-check is seen to fire.

Each test provokes one warning (a ``log.warning``) or one guard (a ``raise``) whose message no other
test asserted, and checks (part of) its text, so silencing the warning or dropping the guard fails
here (checked by deleting each statement in a copy of the project: every such mutant failed its test).
Already covered elsewhere, so not repeated here:

- moalign/checkpoint.py (skipped checkpoint): tests/test_resilience.py
- moalign/rl/weighting.py (reference at or below the origin): tests/rl/test_weighting.py,
  tests/rl/test_degenerate.py
- moalign/tracking.py (http server not reachable, optional): tests/stages/test_errors.py
- stages/prepare.py (non-numeric / too-long rows dropped): tests/stages/test_prepare.py
- moalign/integrations/trl.py (repeated names, hv_apply advantage, no validation):
  tests/integrations/test_trl_weighting.py::test_bad_setups_fail_with_the_fix

stages/evaluate.py's degenerate-front warning is asserted by the slow
tests/stages/test_degenerate_dataset.py and, fast, here. Warnings are read with a handler on the
module's own logger (:func:`warnings_of`), so they are seen whatever the root logger or
``propagate`` is set to.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny import tiny_params


# -- helpers ---------------------------------------------------------------------------------------
class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.WARNING]


@contextmanager
def warnings_of(name: str):
    """The WARNING lines logged to logger ``name`` inside the block (independent of propagation)."""
    lg, h = logging.getLogger(name), _Lines()
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.WARNING)
    try:
        yield h
    finally:
        lg.removeHandler(h)
        lg.setLevel(old)


@pytest.fixture(scope="module")
def world():
    """(rows, tok, model) of tests/test_core_sft.py: arithmetic rows, their tokenizer, a 1-layer Llama."""
    from tests.test_core_sft import tiny

    return tiny()


# -- log warnings ---------------------------------------------------------------------------------
def test_pretrained_model_with_tiny_defaults_is_warned_in_the_log():
    """moalign/guards.py warn_pretrained: each diagnosis is also a WARNING line of moalign.guards."""
    from moalign.guards import warn_pretrained

    class Big(torch.nn.Module):  # 150M parameters on the meta device: no memory
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(150_000_000, device="meta"))

    with warnings_of("moalign.guards") as log:
        lines = warn_pretrained("sft", True, 3e-3, False, Big(), torch.device("cpu"))
    assert log.warnings() == lines and len(lines) == 2
    assert log.warnings()[0].startswith("sft.lr = 0.003 is a tiny-model setting") and "Fix: sft.lr: 2e-5" in lines[0]
    assert "trains all 150.0M parameters" in lines[1] and "Fix: sft.lora.enabled: true" in lines[1]
    with warnings_of("moalign.guards") as log:
        assert warn_pretrained("sft", False, 3e-3, False, Big(), torch.device("cpu")) == []
    assert log.warnings() == []  # the tiny from-config model: silent


def test_zero_validation_hypervolume_is_warned_at_the_end_of_training(world):
    """moalign/rl/trainer.py: reference 'first' and objectives that never rise above it -> HV 0 throughout."""
    from moalign.rl.config import TrainConfig
    from moalign.rl.trainer import train

    rows, tok, model = world
    cfg = TrainConfig(max_steps=1, prompts_per_step=1, group_size=2, max_new_tokens=4, eval_every=1, val_rows=1,
                      val_samples=1, objectives=["accuracy", "clarity"], strategies=["hypervolume"],
                      checkpoint_every=100, snapshot_every=100, weighting={"reference": "first"})
    with warnings_of("moalign.train") as log:
        res = train(cfg, "hypervolume", copy.deepcopy(model), tok, rows["train"], rows["val"], seed=0)
    assert res.degenerate.get("zero_hypervolume")  # the untrained policy is 0 on both: the setup provokes it
    (line,) = [w for w in log.warnings() if "every validation hypervolume was 0" in w]
    assert line.startswith("hypervolume: every validation hypervolume was 0 (reference first")
    assert "Fix: train.weighting.reference: origin" in line


def test_each_failed_judge_attempt_is_one_warning_line():
    """moalign/rubric/llm.py LLMJudge.ask: attempt i/n failed, with the error's type (never the reply)."""
    from moalign.rubric.judges import JudgeError
    from moalign.rubric.llm import LLMJudge

    class Garbage(LLMJudge):
        backend = "fake"

        def complete(self, prompt):
            return "I prefer A, secret-reply-text"

    with warnings_of("moalign.rubric") as log, pytest.raises(JudgeError, match="after 2 attempts"):
        Garbage(retries=1, backoff=0.0).ask("q")
    assert log.warnings() == ["fake judge: attempt 1/2 failed: ValueError",
                              "fake judge: attempt 2/2 failed: ValueError"]  # the type, not the reply's text


@pytest.fixture(scope="module")
def tiny_judge_model(world, tmp_path_factory):
    rows, tok, model = world
    d = tmp_path_factory.mktemp("judge")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_hf_judge_fallback_is_warned_once_not_per_pair(tiny_judge_model):
    """moalign/rubric/llm.py HFJudge.judge: a random model writes no JSON -> the A/B/tie fallback, said once."""
    from moalign.rubric.llm import HFJudge
    from moalign.rubric.schema import load_meta_rubric
    from tests.rubric.helpers import META

    judge = HFJudge(model=str(tiny_judge_model), retries=0, max_new_tokens=2)
    rubric = load_meta_rubric(META)
    with warnings_of("moalign.rubric") as log:
        for _ in range(2):
            (res,) = judge.judge("q", "a", "b", rubric)
            assert res.name == "overall" and res.chosen in ("A", "B", "tie")
    assert judge.fallbacks == 2
    fallback = [w for w in log.warnings() if "fallback" in w]
    assert len(fallback) == 1  # the 1st, then every 100th
    assert fallback[0].startswith(f"hf judge ({tiny_judge_model}): no usable reply (")
    assert "verdict from the A/B/tie choice fallback (1 so far)" in fallback[0]


def test_mlflow_store_that_cannot_open_warns_or_fails_by_required(tmp_path, monkeypatch):
    """moalign/tracking.py stage_run: a tracking URI check_server does not probe (sqlite) that MLflow cannot open."""
    import mlflow

    from moalign.config import TrackingConfig
    from moalign.errors import ServiceError
    from moalign.tracking import stage_run

    from mlflow.tracking._tracking_service import utils

    # stage_run sets MLflow's global URI (and $MLFLOW_TRACKING_URI): both are put back afterwards
    monkeypatch.setattr(utils, "_tracking_uri", utils._tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", ""))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path}/file/mlflow.db"  # its folder is a file
    with warnings_of("moalign.tracking") as log:
        with stage_run("x", TrackingConfig(uri=uri, required=False), {}) as tr:
            assert not tr.enabled
    (line,) = log.warnings()
    assert line.startswith(f"MLflow not reachable at {uri} (") and line.endswith("; continuing without tracking")
    with pytest.raises(ServiceError, match=r"MLflow is not reachable .*Fix: start the tracking server"):
        with stage_run("x", TrackingConfig(uri=uri, required=True), {}):
            pass
    assert not mlflow.active_run()


def _fake_evaluate_world(monkeypatch, tmp_path, points: dict[str, list[float]], reference) -> object:
    """stages/evaluate.py inputs on disk, with every policy's score given by ``points`` (no model runs)."""
    import datasets

    from moalign.config import Params
    from stages import evaluate

    monkeypatch.chdir(tmp_path)
    datasets.Dataset.from_list([{"question": f"{i} + 1", "answer": str(i + 1), "domain": "en"}
                                for i in range(3)]).save_to_disk("data/prepared/test")
    objs = ["accuracy", "conciseness", "clarity"]
    for d in ("models/sft", "models/train/fixed"):
        Path(d).mkdir(parents=True)
        Path(d, "config.json").write_text("{}")
    Path("models/train/fixed/history.json").write_text(json.dumps({
        "history": [{"step": 1, **{f"weights/{o}": 1 / 3 for o in objs}}],
        "initial_weights": [1 / 3] * 3, "final_weights": [1 / 3] * 3}))

    class Policy:
        def __init__(self, path):
            self.name = "sft" if Path(path).name == "sft" else Path(path).name

        def to(self, device):
            return self

    def score(model, tok, rows, objectives, fns, *a, **kw):
        p = points[model.name]
        return {"point": p, "se": [0.0] * 3, "length": 5.0, "length_se": 0.0,
                "per_prompt": np.tile(p, (len(rows), 1)), "styles": {"terse": 1.0, "outline": 0.0, "worked": 0.0}}

    monkeypatch.setattr(evaluate, "load_tokenizer", lambda path: None)
    monkeypatch.setattr(evaluate, "load_policy", lambda path, dtype=None: Policy(path))
    monkeypatch.setattr(evaluate, "score_policy", score)
    raw = tiny_params({"base": {"threads": 0, "tracking": {"enabled": False}},
                       "train": {"strategies": ["fixed"], "objectives": objs},
                       "evaluate": {"reference": reference, "include_snapshots": False, "bootstrap": 5,
                                    "register_as": None}})
    return Params(raw)


def test_evaluate_warns_of_policies_that_do_not_dominate_the_reference(tmp_path, monkeypatch):
    """stages/evaluate.py: a policy below an explicit reference adds 0 hypervolume, said in one line."""
    from stages import evaluate

    params = _fake_evaluate_world(monkeypatch, tmp_path, {"sft": [0.5, 0.5, 0.5], "fixed": [0.1, 0.9, 0.9]},
                                  [0.2, 0.2, 0.2])
    with warnings_of("moalign.evaluate") as log:
        m = evaluate.run(params)
    assert m["fixed"]["hypervolume"] == 0.0 and m["degenerate"] == {}
    assert log.warnings() == ["policies ['fixed'] do not dominate the reference point [0.2, 0.2, 0.2]: "
                              "they add 0 hypervolume"]


def test_evaluate_warns_of_a_degenerate_front(tmp_path, monkeypatch):
    """stages/evaluate.py: clarity 0 for every policy with the origin reference -> lowered and said
    (the fast twin of tests/stages/test_degenerate_dataset.py)."""
    from stages import evaluate

    params = _fake_evaluate_world(monkeypatch, tmp_path, {"sft": [0.5, 0.5, 0.0], "fixed": [0.6, 0.4, 0.0]},
                                  "origin")
    with warnings_of("moalign.evaluate") as log:
        m = evaluate.run(params)
    assert m["degenerate"]["constant"] == ["clarity"]
    (line,) = log.warnings()
    assert line.startswith("degenerate front: {'constant': ['clarity'], 'reference_lowered': {'clarity': -0.05}}")
    assert "reference [0.0, 0.0, -0.05]" in line


# -- the TRL adapter's guards ----------------------------------------------------------------------
@pytest.fixture
def trl_world(tmp_path):
    pytest.importorskip("trl", minversion="1.16")
    from trl import GRPOTrainer

    from tests.integrations import tiny_trl as t

    def make(cls=GRPOTrainer, **kw):
        return cls(model=t.model(), reward_funcs=[t.even, t.odd], args=t.args(tmp_path, **kw),
                   train_dataset=t.dataset(), processing_class=t.TOK)

    return make


def test_trl_adapter_setup_guards(trl_world):
    """moalign/integrations/trl.py RewardWeightingCallback: wrong trainer, bad weights, foreign checkpoint."""
    from transformers import TrainerControl, TrainerState

    from moalign.integrations.trl import STATE_KEY, HypervolumeWeightingCallback, RewardWeightingCallback

    with pytest.raises(TypeError, match=r"object has no 'reward_weights'.*Fix: pass a trl.GRPOTrainer"):
        RewardWeightingCallback(object(), "fixed")
    with pytest.raises(ValueError, match=r"GRPOConfig.reward_weights = \[1.0, -1.0\]: dynamic weighting needs "
                                         r"non-negative weights.*Fix"):
        RewardWeightingCallback(trl_world(reward_weights=[1.0, -1.0]), "gradient")
    with pytest.raises(ValueError, match=r"reward_weights = \[0.0, 0.0\]"):  # positive sum
        RewardWeightingCallback(trl_world(reward_weights=[0.0, 0.0]), "gradient")

    tr = trl_world()
    cb = HypervolumeWeightingCallback(tr, validation=lambda model, step: [0.5, 0.5])
    foreign = RewardWeightingCallback(trl_world(), "gradient").state_dict()
    with pytest.raises(ValueError, match=r"checkpoint holds gradient weights for \['even', 'odd'\], this run uses "
                                         r"hypervolume for \['even', 'odd'\]\. Fix: resume with the same"):
        cb.load_state_dict(foreign)
    with pytest.raises(ValueError, match=f"resumed at step 2 from a checkpoint without {STATE_KEY} in "
                                         r"trainer_state.json\. Fix"):
        cb.on_train_begin(tr.args, TrainerState(global_step=2), TrainerControl())


def test_trl_gradient_trainer_refuses_sharded_training(trl_world, monkeypatch):
    """moalign/integrations/trl.py GradientWeightingGRPOTrainer: FSDP / DeepSpeed are refused."""
    from trl import GRPOTrainer

    from moalign.integrations.trl import GradientWeightingGRPOTrainer

    init = GRPOTrainer.__init__

    def fsdp_init(self, *a, **kw):  # what TRL's __init__ leaves behind under an FSDP accelerate config
        init(self, *a, **kw)
        self.is_fsdp_enabled = True

    monkeypatch.setattr(GRPOTrainer, "__init__", fsdp_init)
    with pytest.raises(NotImplementedError, match="unsharded model. Fix: train with DDP"):
        trl_world(GradientWeightingGRPOTrainer)


def test_trl_advantage_self_check_fires_when_trl_computes_otherwise(trl_world, monkeypatch):
    """moalign/integrations/trl.py: the gradient trainer recomputes TRL's advantages with trl_core's formula
    and refuses to go on when they differ (here: a TRL whose advantages carry an offset)."""
    from trl import GRPOTrainer

    from moalign.integrations.trl import GradientWeightingGRPOTrainer

    original = GRPOTrainer._generate_and_score_completions

    def other_formula(self, inputs):
        out = original(self, inputs)
        out["advantages"] = out["advantages"] + 0.5
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", other_formula)
    tr = trl_world(GradientWeightingGRPOTrainer, max_steps=1)
    with pytest.raises(RuntimeError, match=r"TRL's advantages differ from moalign\.integrations\.trl_core\."
                                           r"trl_advantages .*Fix: install trl 1\.16"):
        tr.train()
    assert tr.weighting_callback.history["weights"] == []  # no step was taken with unchecked advantages


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_trl_core_and_validation_input_guards(trl_world):
    """moalign/integrations/trl_core.py _check and trl_validation.py validation_point."""
    from moalign.integrations.trl_core import reward_advantages, trl_advantages
    from moalign.integrations.trl_validation import validation_point

    r, w = torch.zeros(6, 2), torch.ones(2)
    with pytest.raises(ValueError, match=r"rewards_per_func of shape \(6, 2\): expected \(N, K\) with N a multiple "
                                         r"of num_generations = 4"):
        trl_advantages(r, w, 4, "sum_then_normalize", "group")
    with pytest.raises(ValueError, match="multi_objective_aggregation = 'mean'; valid: sum_then_normalize, "
                                         "normalize_then_sum"):
        trl_advantages(r, w, 3, "mean", "group")
    with pytest.raises(ValueError, match="scale_rewards = 'std'; valid: group, batch, none"):
        reward_advantages(r, 3, "std")

    tr = trl_world()
    with pytest.raises(ValueError, match="validation dataset needs rows with a 'prompt' column"):
        validation_point(tr, [{"question": "1 + 1"}], samples=0, seed=0)
    tr.reward_funcs[1] = lambda completions, **_: [None] * len(completions)  # 'odd' never applies
    with pytest.raises(ValueError, match=r"reward functions \['odd'\] returned None for every validation "
                                         "completion. Fix"):
        validation_point(tr, [{"prompt": "Question: 1 + 1\nSolution:"}], samples=0, seed=0)
    tr.reward_funcs[0] = torch.nn.Linear(1, 1)  # a reward model
    with pytest.raises(ValueError, match="reward function 'even' is a model; the built-in validation calls plain "
                                         "functions only"):
        validation_point(tr, [{"prompt": "x"}], samples=0, seed=0)


# -- other self-checks whose message no test asserted ------------------------------------------------
def _plan_sampler(**over):
    from moalign.balance.plan import BalanceConfig, build_plan
    from moalign.balance.sampler import PlanSampler

    plan = {**build_plan(BalanceConfig(), {"en": 4, "de": 2}, 100), **over}
    return PlanSampler(plan, {"en": [0, 1, 2, 3], "de": [4, 5]}, 10, 2, seed=0)


def _guards():
    """pytest.param(thunk, exception type, regex of the message, id=where it is raised)."""
    from pydantic import ValidationError

    from moalign import pareto, plots
    from moalign.balance.plan import BalanceConfig, build_plan
    from moalign.data import arith
    from moalign.data.config import GeneratorConfig
    from moalign.data.numerals import spell
    from moalign.errors import StageError
    from moalign.io import atomic_outputs
    from moalign.modeling import resolve_device
    from moalign.rl.config import TrainConfig
    from moalign.rl.weighting import GradientBased, WeightingConfig
    from moalign.rubric.aggregate import CriterionResult
    from moalign.rubric.config import EvolveConfig, RubricConfig
    from moalign.rubric.judges import JudgeError
    from moalign.rubric.llm import LLMJudge, parse_reply
    from moalign.rubric.schema import Enforcement

    def crit(**kw):
        return json.dumps([{"name": "x", "tier": "core", "chosen": "A", "score": 1, **kw}])

    def unwritten():
        with atomic_outputs("never_written.txt"):
            pass

    return [pytest.param(thunk, exc, pattern, id=name) for name, thunk, exc, pattern in [
        ("modeling.cuda", lambda: resolve_device("cuda"), RuntimeError,
         r"base.device = 'cuda' but no CUDA device is visible\. Fix: set base.device: auto or cpu"),
        ("io.atomic_outputs", unwritten, StageError, r"were not written; no output was replaced\. Fix"),
        ("sampler.starts", lambda: _plan_sampler(phases=[{"start": 0.5, "probs": {"en": 0.5, "de": 0.5},
                                                          "loss_weights": {"en": 1.0, "de": 1.0}}]),
         ValueError, r"plan phase starts \[0\.5\] must begin at 0 and increase"),
        ("sampler.step", lambda: _plan_sampler().phase_at(-1), ValueError, r"step = -1 must be >= 0"),
        ("plan.total_samples", lambda: build_plan(BalanceConfig(), {"en": 4}, 0), ValueError,
         r"balance: total_samples = 0 must be >= 1\. Fix"),
        ("pareto.shape", lambda: pareto.non_dominated(np.zeros((1, 2, 2))), ValueError,
         r"points must be \(N, K\) or \(K,\), got shape \(1, 2, 2\)"),
        ("pareto.tol", lambda: pareto.steps_to_dominance([(0, [1.0])], [1.0], tol=-1.0), ValueError,
         r"tol must be >= 0, got -1\.0"),
        ("plots.no_objectives", lambda: plots.plot_pareto({"a": [1.0]}, [], "x.png"), ValueError,
         r"plot_pareto needs at least 1 objective name"),
        ("data.sizes", lambda: GeneratorConfig(sizes={"en": 0}), ValidationError,
         r"every domain needs at least 1 train row, got \{'en': 0\}"),
        ("data.no_domains", lambda: GeneratorConfig(sizes={}), ValidationError, r"no domains\. Fix"),
        ("data.style_shares", lambda: GeneratorConfig(styles={"terse": 0.0}), ValidationError,
         r"style shares must be >= 0 with at least one > 0"),
        ("data.op_unknown", lambda: GeneratorConfig(op_weights={"div": 1.0}), ValidationError,
         r"unknown operation\(s\) \['div'\]\. Fix: use add, sub, mul, two"),
        ("data.op_weights", lambda: GeneratorConfig(op_weights={"add": 0.0}), ValidationError,
         r"weights must be >= 0 with at least one > 0"),
        ("arith.op", lambda: arith.solve("div", 4, 2, 0), ValueError, r"unknown operation 'div'"),
        ("numerals.range", lambda: spell(10**6, "de"), ValueError, r"spell: 1000000 is outside 0\.\.999999"),
        ("train.objectives", lambda: TrainConfig(objectives=["accuracy", "accuracy"]), ValidationError,
         r"objectives must be a non-empty list without repeats"),
        ("train.clip_eps", lambda: TrainConfig(clip_eps=1.5), ValidationError, r"clip_eps must be in \(0, 1\) or null"),
        ("weighting.grads", lambda: GradientBased(["a", "b"], WeightingConfig(weights=[0.5, 0.5]))
         .update_from_grads(torch.zeros(3, 4), 1e-3), ValueError, r"grads of shape \(3, 4\); expected \(K=2, D\)"),
        ("rubric.rates", lambda: EvolveConfig(add_rate=0, delete_rate=0, modify_rate=0), ValidationError,
         r"add_rate \+ delete_rate \+ modify_rate must be > 0"),
        ("rubric.columns", lambda: RubricConfig(preference_columns={"question": "q"}), ValidationError,
         r"unknown keys \['question'\]\. Fix: map only"),
        ("rubric.criteria_range", lambda: Enforcement(min_criteria=9, max_criteria=3), ValidationError,
         r"min_criteria \(9\) > max_criteria \(3\)"),
        ("aggregate.chosen", lambda: CriterionResult("x", "core", "C", 1), ValueError,
         r"criterion 'x': chosen must be A, B or tie, got 'C'"),
        ("aggregate.score", lambda: CriterionResult("x", "core", "A", 1.5), ValueError,
         r"criterion 'x': score must be an integer in -2\.\.2, got 1\.5"),
        ("judge.retries", lambda: LLMJudge(retries=-1), JudgeError, r"judge retries and backoff must be >= 0"),
        ("reply.no_json", lambda: parse_reply("A is better"), ValueError, r"no JSON object in the reply"),
        ("reply.no_list", lambda: parse_reply('{"rubric_compares": []}'), ValueError,
         r"reply has no rubric_compares list"),
        ("reply.item", lambda: parse_reply("[1]"), ValueError, r"a criterion is not an object"),
        ("reply.missing", lambda: parse_reply('[{"tier": "core", "chosen": "A", "score": 1}]'), ValueError,
         r"a criterion has no name / rubric_name field"),
        ("reply.chosen", lambda: parse_reply(crit(chosen="C")), ValueError, r"chosen 'C' is not one of A, B, tie"),
        ("reply.score_nan", lambda: parse_reply(crit(score="high")), ValueError, r"score 'high' is not a number"),
        ("reply.score_bool", lambda: parse_reply(crit(score=True)), ValueError, r"score True is not a number"),
        ("reply.score_range", lambda: parse_reply(crit(score=3)), ValueError, r"score 3 is not an integer in -2\.\.2"),
    ]]


@pytest.mark.parametrize("thunk, exc, pattern", _guards())
def test_guard_raises_its_message(thunk, exc, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # io.atomic_outputs writes (nothing) here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # modeling.cuda: any machine is CUDA-less
    with pytest.raises(exc, match=pattern):
        thunk()


def test_prepare_fails_when_every_row_is_too_long(world):
    """stages/prepare.py drop_too_long: a split with no row that fits is an error, after the warning."""
    from collections import Counter

    from moalign.errors import StageError
    from stages.prepare import drop_too_long

    rows, tok, _ = world
    drops = Counter()
    with warnings_of("moalign.prepare") as log, \
            pytest.raises(StageError, match=r"prepare: every val row has a prompt or target longer than "
                                            r"prepare.model.max_length = 3 tokens\. Fix: raise"):
        drop_too_long({"val": rows["val"][:2]}, tok, 3, drops)
    assert log.warnings() == ["dropped 2 of 2 val rows whose prompt or target is longer than "
                              "prepare.model.max_length = 3 tokens"]


# -- flows: a failed DVC call is an error with its output ---------------------------------------------
@pytest.fixture
def outside_repo(tmp_path, monkeypatch):
    """A folder that is no DVC repository, with the venv's dvc on PATH."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_flow_dvc_failures_raise_with_the_command(outside_repo, monkeypatch):
    """flows/parallel.py is_stale / run_parallel, flows/sweep.py _dvc, flows/pipeline.py dvc_stage."""
    import yaml

    from flows import parallel, pipeline, sweep

    with pytest.raises(RuntimeError, match=r"dvc status prepare failed:\n"):
        parallel.is_stale("prepare")
    with pytest.raises(RuntimeError, match=r"dvc exp show failed:\n"):
        sweep._dvc("exp", "show")
    monkeypatch.setattr(pipeline, "get_run_logger", lambda: logging.getLogger("test.flows"))
    with pytest.raises(RuntimeError, match=r"stage prepare failed \(exit [1-9]\d*\):\n"):
        pipeline.dvc_stage.fn("prepare", force=True)  # (without force, dvc status fails first: above)
    Path("dvc.yaml").write_text(yaml.safe_dump({"stages": {"boom": {"cmd": "python -c 'raise SystemExit(3)'"}}}))
    said: list[str] = []
    with pytest.raises(RuntimeError, match=r"stages failed: boom \(not recorded in dvc.lock; rerun to retry\)"):
        parallel.run_parallel(["boom"], 1, {}, log=said.append, force=True)
    assert any(s.startswith("boom failed (exit 3)") for s in said)
