"""Phase 1's offline data: specialists' transitions under rule-based behaviour policies.

E envs run on the training split, env e following behaviour policy e mod B (trend following,
mean reversion, buy-and-hold, random); the meta-controller is held at equal allocation and full
risk appetite, as in phase 1's PPO. Each bar, each specialist's view (the same inputs
`HierarchicalSystem.decide` gives it), the behaviour's positions (clipped to +/- SIGNAL_CLIP, as
traded) as pre-squash latents atanh(signal), the domain's reward and the next view are recorded.
A step that ends an episode by truncation is dropped (the autoreset has already replaced its next observation, and
bootstrapping from a wrong one would bias the critic); a ruinous step is kept as terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.vec_env import VecMarketEnv
from hierarchy.behaviour import BEHAVIOURS, behaviour_signals
from hierarchy.messages import compose_weights
from hierarchy.system import HierarchicalSystem

SIGNAL_CLIP = 0.9            # |signal| cap of the behaviours' positions: buy-and-hold's 1.0 has no latent,
#                              and near-saturated targets teach CQL's actor latents PPO can hardly move


@dataclass
class SpecialistTransitions:
    """One specialist's transitions, M rows."""

    domain: str
    domain_obs: np.ndarray            # (M, F_d) float32
    instrument_obs: np.ndarray        # (M, n_d, F_i) float32
    latent_action: np.ndarray         # (M, n_d) float32, atanh of the behaviour's signals
    reward: np.ndarray                # (M,) float32, the domain's reward
    next_domain_obs: np.ndarray       # (M, F_d) float32
    next_instrument_obs: np.ndarray   # (M, n_d, F_i) float32
    terminated: np.ndarray            # (M,) bool
    behaviour: np.ndarray             # (M,) int64, index into the behaviour names


def collect_behaviour_transitions(env: VecMarketEnv, system: HierarchicalSystem, steps: int,
                                  rng: np.random.Generator,
                                  behaviours: tuple[str, ...] = BEHAVIOURS) -> dict[str, SpecialistTransitions]:
    """`steps` bars of every env under its behaviour policy; transitions per domain name."""
    E, D = env.num_envs, len(system.domain_names)
    close = env.market.close
    per_behaviour = {name: behaviour_signals(name, close, rng) for name in behaviours if name != "random"}
    assigned = np.arange(E) % len(behaviours)                               # (E,)
    signals = np.stack([per_behaviour[behaviours[b]] if behaviours[b] != "random"
                        else behaviour_signals("random", close, rng) for b in assigned], axis=1)  # (T, E, N)
    allocation, appetite = np.full((E, D), 1.0 / D), np.ones(E)
    env.reset(seed=int(rng.integers(2**31)))
    env.set_guidance(allocation, appetite)
    records: list[list[dict[str, np.ndarray]]] = [[] for _ in range(D)]
    inputs, _ = system.observe_specialists(env)
    for _ in range(steps):
        signal = np.clip(signals[env.state.bar, np.arange(E)], -SIGNAL_CLIP, SIGNAL_CLIP)   # (E, N)
        targets = compose_weights(signal, allocation, appetite, system.domain_index,
                                  system.config.max_leverage)
        _, _, terminated, truncated, info = env.step(targets)
        env.set_guidance(allocation, appetite)
        next_inputs, _ = system.observe_specialists(env)
        keep = ~truncated | terminated
        latent = np.arctanh(signal).astype(np.float32)
        for d in range(D):
            members = system.members[d]
            records[d].append({
                "domain_obs": inputs[d][0].numpy()[keep], "instrument_obs": inputs[d][1].numpy()[keep],
                "latent_action": latent[:, members][keep],
                "reward": info["domain_reward"][keep, d].astype(np.float32),
                "next_domain_obs": next_inputs[d][0].numpy()[keep],
                "next_instrument_obs": next_inputs[d][1].numpy()[keep],
                "terminated": terminated[keep], "behaviour": assigned[keep]})
        inputs = next_inputs
    return {name: SpecialistTransitions(domain=name, **{key: np.concatenate([r[key] for r in records[d]])
                                                        for key in records[d][0]})
            for d, name in enumerate(system.domain_names)}
