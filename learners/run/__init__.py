"""Run plumbing: the typed config of a training run, its effective settings resolved once, the
run folder (paths, atomic writes, the readers and writers of its files), phase checkpoints, the
workspace a run's policies act in, and restoring a policy from a checkpoint. It knows the
market side and the hierarchy, never the experiment that trains them or the evaluation."""
