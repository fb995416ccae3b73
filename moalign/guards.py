"""One-line diagnoses of runs that cannot work, each naming the key and the fix.

- :func:`pretrained_warnings` (sft and train stages): the defaults of params.yaml are tuned for
  the tiny from-config model; a pretrained model (``prepare.model.name_or_path``) meets them badly.
  SmolLM2-135M-Instruct at the default ``sft.lr`` 3e-3 lost what it knew within 4 steps
  (validation loss 7.1, accuracy 0), and full-parameter training of 134.5M parameters on CPU costs
  minutes per step (fp32 forward + backward of 32 x 200 tokens: 101 s on 2 cores).
- :func:`no_pairs_message` (rubric stage): when the SFT policy's samples give too few preference
  pairs to fill the train/val/test splits, say what the samples looked like (how many wrote a
  ``\\boxed{}`` answer, how many were right, whether every sample got the same annotator key)
  instead of blaming ``rubric.n_prompts``, which cannot help a policy that never writes the format.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Sequence

from moalign.grading import extract_answer, grade

log = logging.getLogger("moalign.guards")
PARAMS_LIMIT = 100_000_000  # full-parameter training above this many parameters on CPU: warn


def pretrained_warnings(stage: str, pretrained: bool, lr: float, lora: bool, n_params: int, cpu: bool) -> list[str]:
    """One line per tiny-model setting a pretrained model meets in ``stage`` (sft | train).

    Learning-rate limits: full fine-tuning above 1e-4 (sft) / 1e-5 (train), LoRA above 1e-3.
    """
    if not pretrained:
        return []
    out = []
    limit = 1e-3 if lora else (1e-4 if stage == "sft" else 1e-5)
    if lr > limit:
        if lora:
            fix = "2e-4" if stage == "sft" else "1e-4"
        else:
            fix = "2e-5, or 2e-4 with sft.lora.enabled: true" if stage == "sft" else \
                "1e-6, or LoRA via sft.lora.enabled: true"
        out.append(f"{stage}.lr = {lr:g} is a tiny-model setting that wrecks a pretrained model (SmolLM2-135M at "
                   f"sft.lr 3e-3: validation loss 7.1 after 4 steps). Fix: {stage}.lr: {fix} (profiles/smollm2.yaml)")
    if cpu and not lora and n_params > PARAMS_LIMIT:
        out.append(f"{stage} trains all {n_params / 1e6:.1f}M parameters of a pretrained model on CPU (minutes per "
                   "step). Fix: sft.lora.enabled: true (SFT and the train stage then train LoRA adapters)")
    return out


def warn_pretrained(stage: str, pretrained: bool, lr: float, lora: bool, model, device) -> list[str]:
    """Log :func:`pretrained_warnings` for ``model`` on ``device`` (a torch.device); returns the lines."""
    n = sum(p.numel() for p in model.parameters())
    lines = pretrained_warnings(stage, pretrained, lr, lora, n, getattr(device, "type", str(device)) == "cpu")
    for line in lines:
        log.warning(line)
    return lines


def splits_filled(n_prompts: int, fractions: Sequence[float]) -> bool:
    """Whether ``n_prompts`` prompts fill every train/val/test split (split_by_prompt's rounding)."""
    a, b = int(round(n_prompts * fractions[0])), int(round(n_prompts * (fractions[0] + fractions[1])))
    return 0 < a < b < n_prompts


def no_pairs_message(pairs: list[dict], samples: Sequence[Sequence[str]], answers: Sequence[str], key_fn,
                     annotator: str, fractions: Sequence[float]) -> str | None:
    """None when the synthetic pairs fill every split, else the one-line diagnosis and fix.

    ``samples[i]`` are the policy's samples for the prompt with reference ``answers[i]``;
    ``key_fn(response, answer)`` is the annotator's key (equal keys give no pair).
    """
    with_pairs = len({p["prompt"] for p in pairs})
    if splits_filled(with_pairs, fractions):
        return None
    flat = [(s, str(a)) for ss, a in zip(samples, answers) for s in ss]
    n = len(flat)
    boxed = sum(extract_answer(s) is not None for s, _ in flat)
    correct = sum(grade(s, a) for s, a in flat)
    keys = Counter(key_fn(s, a) for s, a in flat)
    saw = (f"{n} samples ({len(samples)} prompts x {len(samples[0]) if samples else 0}): {boxed} wrote a \\boxed{{}} "
           f"answer, {correct} were correct")
    if len(keys) == 1:
        saw += f", and all got the same {annotator} annotator key {next(iter(keys))}"
    if boxed == 0:
        cause, fix = ("the policy never wrote a boxed answer (it has not learnt the answer format)",
                      "train SFT until it writes it (metrics/sft.json accuracy > 0: more sft.max_steps, a working "
                      "sft.lr; with a chat model keep prepare.model.chat_template: auto)")
    elif len(keys) == 1 or correct in (0, n):
        cause, fix = ("the samples hardly differ in what the annotator ranks",
                      "a stronger SFT policy, or more varied samples (rubric.temperature, rubric.samples_per_prompt)")
    else:
        cause, fix = ("too few prompts had samples with different annotator keys",
                      "raise rubric.n_prompts or rubric.samples_per_prompt")
    return (f"the SFT policy's samples gave {len(pairs)} preference pairs on {with_pairs} prompts, too few for the "
            f"train/val/test splits {list(fractions)}: {saw}; {cause}. Fix: {fix}")
