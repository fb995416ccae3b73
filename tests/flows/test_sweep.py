import asyncio
import math
import os

import pytest

from flows.sweep import exp_args, summarize, summary_frame


def test_exp_args():
    assert exp_args("rloo", 2, ["fixed", "gradient"], "n") == [
        "exp", "run", "-n", "n", "-S", "train.estimator=rloo", "-S", "base.seed=2",
        "-S", "train.strategies=[fixed,gradient]"]


def test_summarize_mean_spread_and_steps():
    res = {
        "e1": {"fixed": {"hypervolume": 0.1, "steps_to_dominance": 40}, "gradient": {"hypervolume": 0.3, "steps_to_dominance": 20},
               "sft": {"hypervolume": 0.0}, "objectives": ["a"]},
        "e2": {"fixed": {"hypervolume": 0.3, "steps_to_dominance": None}, "gradient": {"hypervolume": 0.5, "steps_to_dominance": 30}},
    }
    s = summarize(res, {"e1": ("grpo", 0), "e2": ("grpo", 1)})
    # sd over seeds is the sample sd: sqrt(((0.3 - 0.4)^2 + (0.5 - 0.4)^2) / 1)
    assert s["gradient/grpo"]["hv_mean"] == pytest.approx(0.4) and s["gradient/grpo"]["hv_std"] == pytest.approx(0.02 ** 0.5)
    assert s["gradient/grpo"]["steps_to_dominance_mean"] == 25 and s["gradient/grpo"]["reached"] == 2
    assert s["fixed/grpo"]["reached"] == 1 and "sft/grpo" not in s
    assert not math.isnan(s["fixed/grpo"]["steps_to_dominance_mean"])
    df = summary_frame(res, {"e1": ("grpo", 0), "e2": ("grpo", 1)})
    assert list(df.strategy) == ["fixed", "gradient"] and {"accuracy_mean", "length_sd", "weight_shift_mean"} <= set(df)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_sweep_deployment_has_cron(harness):
    from prefect.client.orchestration import get_client

    from flows.sweep import sweep

    dep_id = sweep.to_deployment(name="sweep-cron", cron="0 4 * * 0",
                                 parameters={"estimators": ["grpo"], "seeds": [0, 1]}).apply()

    async def read():
        async with get_client() as c:
            return await c.read_deployment(dep_id)

    dep = asyncio.run(read())
    assert any(getattr(s.schedule, "cron", None) == "0 4 * * 0" for s in dep.schedules)
    assert dep.parameters["seeds"] == [0, 1]
