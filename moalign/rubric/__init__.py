"""rubric: an explicit, inspectable LLM-as-a-judge after OpenRS (Open Rubric System).

- :mod:`~moalign.rubric.schema`: the meta-rubric as typed data (load/dump, errors with line numbers).
- :mod:`~moalign.rubric.pvr`: pointwise verifiable rubrics (ground truth, format, limits) and the gate.
- :mod:`~moalign.rubric.features`: programmatic features the offline ``rules`` judge compares.
- :mod:`~moalign.rubric.aggregate`: OpenRS aggregation (fatal veto, tier weights, both orders).
- :mod:`~moalign.rubric.judges` / :mod:`~moalign.rubric.llm`: judge backends (rules, openai, hf), ``judge_pair``.
- :mod:`~moalign.rubric.annotators`: synthetic annotators (``honest_working``: a criterion no judge feature sees).
- :mod:`~moalign.rubric.preferences`: synthetic pairs, the correctness-tie split, user preference datasets.
- :mod:`~moalign.rubric.pointwise`: the pointwise baseline judge (one tier-weighted scalar per response).
- :mod:`~moalign.rubric.evolve`: evolutionary refinement of the meta-rubric.
- :mod:`~moalign.rubric.review`: human-in-the-loop domain principles.
- :mod:`~moalign.rubric.reward`: the ``rubric`` RL objective (anchor from the group, plus PVR).
"""
