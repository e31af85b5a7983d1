"""Learners written from scratch (PPO, SAC, CQL) under Lightning Fabric, and `learners.train`, the
hydra entry point of the three-phase curriculum. Learners see gymnasium spaces and tensors only."""
