"""Experience storage for the learners: on-policy rollouts with GAE, a circular replay buffer and
offline datasets."""
