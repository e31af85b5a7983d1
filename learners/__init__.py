"""Learners written from scratch (PPO, SAC, CQL) under Lightning Fabric; they see gymnasium
spaces and tensors only. The sub-packages sit above the hierarchy: `learners.run` (run
plumbing: config, run folder, checkpoints, restore) and `learners.experiment` (the curriculum),
with `learners.train`, the hydra entry point, on top."""
