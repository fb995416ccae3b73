"""rubric: meta-rubric schema, verifiable rubrics, pairwise judges, evolution, review and the RL reward."""
