"""One rank of test_trl_multiprocess: both adapters on a 2-process GRPOTrainer run; writes <dump>/rank<r>.json.

Run by ``accelerate launch --multi_gpu --num_processes 2`` (on CPU: two gloo processes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trl import GRPOTrainer

from moalign.integrations.trl import GradientWeightingGRPOTrainer, HypervolumeWeightingCallback
from moalign.rl.distributed import param_hash
from tests.integrations.tiny_trl import TOK, Length, args, dataset, even, even2, model, odd


class LocalGrads(GradientWeightingGRPOTrainer):
    """Keeps this rank's (K, D) matrices before they are averaged over ranks."""

    def objective_grads(self, batch, adv):
        g = super().objective_grads(batch, adv)
        self.local = getattr(self, "local", []) + [g.sum(1).tolist()]
        return g


def main(out: Path, dump: Path) -> None:
    rec = {}
    for strategy in ("gradient", "hypervolume"):
        length = Length()
        kw = dict(model=model(), reward_funcs=[even, odd, even2, length], train_dataset=dataset(),
                  processing_class=TOK, args=args(out / strategy, max_steps=3))
        if strategy == "gradient":
            tr = LocalGrads(**kw, weighting={"grad_layers": ["layers"]})
            cb = tr.weighting_callback
        else:
            tr = GRPOTrainer(**kw)
            cb = HypervolumeWeightingCallback(tr, validation=dataset("val", 4), config={"eval_every": 1})
            tr.add_callback(cb)
        tr.train()
        rec[strategy] = {"history": cb.history, "weights": cb.weights().tolist(),
                         "reward_weights": tr.reward_weights.tolist(), "rewards": length.state_dict(),
                         "param_hash": param_hash(tr.model), "local": getattr(tr, "local", None)}
        rank, world = tr.accelerator.process_index, tr.accelerator.num_processes
    dump.mkdir(parents=True, exist_ok=True)
    (dump / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": world, **rec}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
