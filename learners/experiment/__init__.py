"""The experiment: the curriculum's phases as loops of rollouts and updates, their order, the
evaluation after training and walk-forward retraining; `learners.train` is its entry point. The
one place that wires every level together."""
