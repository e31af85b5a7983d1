"""`HierarchicalSystem`: one decision for a batch of market environments.

Per bar, for E envs at once:
  1. the meta-controller acts in envs whose clock says so (every `meta_period` bars and at each
     episode start) and holds its allocation and risk appetite in between; the env shows them
     to the specialists (`set_guidance`);
  2. each specialist reads its domain's view (its instruments' observations, the domain state,
     and a coordination value: how its sub-portfolio correlates with the others') and every
     instrument head proposes a position latent u; the signal is tanh(u) in [-1, 1];
  3. signals compose into target weights w_i = L_max * rho * a_d(i) * s_i / n_d(i);
  4. the env applies the risk overlay (if it has one) and executes.
Messages (allocations down, performance reports up, coordination across) are built from the same
arrays for the decision log. The system holds no market data: everything comes from the env.

Variants: `coordinator='consensus'` replaces step 1's meta-controller by the consensus engine's
vote of the specialists and the risk overlay (`hierarchy.consensus`), its votes, weights and
rationale in the messages; `risk_agent='learned'` takes the meta's risk appetite from a small
agent of the portfolio's risk state (`hierarchy.risk_agent`); a centralised critic (MAPPO,
`hierarchy.critic`) gives the specialists' values in place of their own value heads; sequence
specialists (`hierarchy.sequence`) also read the env's window of their instruments' last bars, and
a recurrent one carries its state per env from bar to bar, zeroed when an episode starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

import hierarchy.sequence  # noqa: F401  (registers the sequence specialist types)
from envs.vec_env import VecMarketEnv
from envs.views import DOMAIN_STATE, specialist_observation
from hierarchy.consensus import (
    OVERLAY,
    ConsensusConfig,
    PerformanceWeights,
    Proposals,
    Verdict,
    overlay_proposal,
    specialist_proposals,
    verdict_records,
    vote,
    voter_returns,
)
from hierarchy.critic import CentralCritic
from hierarchy.distributions import pack_action
from hierarchy.messages import (
    AllocationMessage,
    PerformanceReport,
    as_record,
    compose_weights,
    coordination_signals,
    domain_correlations,
)
from hierarchy.networks import MetaController, Specialist, build_specialists, module_key
from hierarchy.risk_agent import RiskAgent
from risk.env_hook import RiskHook

COORDINATORS: tuple[str, ...] = ("meta", "consensus")
RISK_AGENTS: tuple[str, ...] = ("none", "learned")


@dataclass
class HierarchyConfig:
    """Networks and decision rhythm of the hierarchy (the `hierarchy/` config group)."""

    meta_period: int = 5                  # bars between meta decisions (weekly on daily bars)
    max_leverage: float = 2.0             # L_max of the weight composition
    meta_hidden: int = 128
    meta_dropout: float = 0.1
    logit_scale: float = 3.0
    specialist_hidden: int = 64
    specialist_type: str = "mlp"          # registered type of the domains `specialists` does not name
    specialists: dict[str, str] = field(default_factory=dict)   # domain -> registered type
    coordination_threshold: float = 0.5   # |correlation| that emits a coordination signal
    coordinator: str = "meta"             # 'meta': the learned meta-controller; 'consensus': the vote
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    risk_agent: str = "none"              # 'learned': a risk agent sets the meta's risk appetite
    risk_hidden: int = 32                 # the risk agent's hidden width


@dataclass
class SpecialistStep:
    """What one specialist saw and did in one bar, as tensors (for its PPO buffer)."""

    domain_obs: Tensor        # (E, F_d)
    instrument_obs: Tensor    # (E, n_d, F_i)
    allocation: Tensor        # (E,)
    appetite: Tensor          # (E,)
    latent: Tensor            # (E, n_d) pre-squash positions
    log_prob: Tensor          # (E,) of the latent (zero when the specialists acted deterministically)
    value: Tensor             # (E,) V(obs) (zero when the specialists acted deterministically)
    sequence: dict[str, Tensor] = field(default_factory=dict)   # window, recurrent state held before the bar


@dataclass
class Decision:
    """One bar's decision for E envs."""

    specialists: list[SpecialistStep]
    meta_obs: Tensor          # (E, F_m) the meta observation at this bar
    meta_acted: np.ndarray    # (E,) bool, the meta-controller chose a new action at this bar
    allocation: np.ndarray    # (E, D) float64, in force at this bar
    appetite: np.ndarray      # (E,) float64
    signals: np.ndarray       # (E, N) float64 in [-1, 1]
    target_weights: np.ndarray  # (E, N) float64, before the risk overlay
    coordination: np.ndarray  # (E, D, D) correlation of the domains' sub-portfolios
    verdict: Verdict | None = None   # the consensus of the envs where it voted (rows: `voted`)
    voted: np.ndarray | None = None  # (V,) env index of each verdict row

    @property
    def meta_action(self) -> Tensor:
        """(E, D + 1) the packed meta action, as the critics see it."""
        return pack_action(torch.as_tensor(self.allocation, dtype=torch.float32),
                           torch.as_tensor(self.appetite, dtype=torch.float32))


class HierarchicalSystem(nn.Module):
    """The meta-controller and one specialist per domain, sized from an env's views; with
    `central_critic`, MAPPO's critic of the specialists."""

    def __init__(self, env: VecMarketEnv, config: HierarchyConfig, central_critic: bool = False) -> None:
        super().__init__()
        market = env.market
        self.config = config
        self.domain_names = market.domain_names
        self.domain_index = env.domain_index
        self.members = env.domain_members
        self.layout = env.layout
        D = len(self.domain_names)
        instrument_dim = env.layout.per_instrument
        domains = {d: market.instruments_of(d) for d in self.domain_names}
        domain_dims = {d: len(symbols) * instrument_dim + len(DOMAIN_STATE) + 1
                       for d, symbols in domains.items()}
        window_shape = (env.config.window, env.layout.n_features)                        # (W, F_w)
        self.specialists = build_specialists(domains, config.specialists, domain_dims, instrument_dim,
                                             config.specialist_hidden, config.specialist_type, window_shape)
        meta_dim = env.meta_observation().shape[1]
        risk_agent = None
        if config.risk_agent == "learned":
            N = len(self.domain_index)
            pairs = N * (N - 1) // 2 if env.config.meta_correlation == "instruments" else D * (D - 1) // 2
            risk_agent = RiskAgent(env.layout, pairs, market.bars_per_year, config.risk_hidden)
        self.meta = MetaController(meta_dim, D, config.meta_hidden, config.meta_dropout, config.logit_scale,
                                   risk_agent)
        self.central_critic = (CentralCritic(list(domain_dims.values()), 2 * config.specialist_hidden)
                               if central_critic else None)
        self.voters = (*self.domain_names, OVERLAY)
        self.consensus = (PerformanceWeights(len(self.voters), config.consensus.halflife, config.consensus.temperature)
                          if config.coordinator == "consensus" else None)
        self.fixed_meta = False           # phase 1 and the no_meta ablation: equal, full appetite
        self.bind(env.num_envs)

    def specialist(self, d: int) -> Specialist:
        """The specialist of domain index d (universe order)."""
        return self.specialists[module_key(self.domain_names[d])]

    # ------------------------------------------------------------------ rhythm
    def bind(self, num_envs: int) -> None:
        """Fresh per-env decision state for `num_envs` envs: equal allocation, full appetite,
        and the meta-controller due at the next bar."""
        D = len(self.domain_names)
        self.allocation = np.full((num_envs, D), 1.0 / D)
        self.appetite = np.ones(num_envs)
        self.clock = np.zeros(num_envs, dtype=np.int64)   # bars since the meta-controller acted
        self.states = [torch.zeros(num_envs, specialist.state_size) for specialist in self.specialists.values()]
        if self.consensus is not None:
            self.consensus.bind(num_envs)

    def restart(self, envs: np.ndarray | None = None) -> None:
        """Episodes (re)started in `envs` (all if None): the meta-controller acts next bar (the
        consensus weights start afresh)."""
        self.clock[slice(None) if envs is None else envs] = 0
        for state in self.states:
            state[slice(None) if envs is None else torch.as_tensor(envs)] = 0.0
        if self.consensus is not None:
            self.consensus.restart(slice(None) if envs is None else envs)

    def observe_specialists(self, env: VecMarketEnv) -> tuple[list[tuple[Tensor, Tensor]], np.ndarray]:
        """Each specialist's inputs at the env's current bar, (domain_obs (E, F_d),
        instrument_obs (E, n_d, F_i)) per domain, and the domains' coordination (E, D, D)."""
        coordination = domain_correlations(env.weights, env.covariance(), self.domain_index,
                                           len(self.domain_names))
        return self.specialist_inputs(env.observation, coordination), coordination

    def specialist_inputs(self, observation: np.ndarray, coordination: np.ndarray) -> list[tuple[Tensor, Tensor]]:
        """(domain_obs (E, F_d), instrument_obs (E, n_d, F_i)) per domain from flat observation
        rows (E, size) and the domains' coordination (E, D, D): a domain's encoder sees its
        instruments' rows, its domain state and its mean correlation with the other domains."""
        E = observation.shape[0]
        inputs = []
        for d in range(len(self.domain_names)):
            instrument_obs, domain_state = specialist_observation(observation, self.layout, d, self.members[d])
            others = np.delete(coordination[:, d, :], d, axis=1)           # (E, D-1)
            mean_coordination = others.mean(axis=1, keepdims=True) if others.shape[1] else np.zeros((E, 1))
            domain_obs = np.concatenate([instrument_obs.reshape(E, -1), domain_state, mean_coordination], axis=1)
            inputs.append((torch.as_tensor(domain_obs, dtype=torch.float32),
                           torch.as_tensor(np.ascontiguousarray(instrument_obs), dtype=torch.float32)))
        return inputs

    def sequence_inputs(self, env: VecMarketEnv, d: int, rows: np.ndarray | None = None) -> dict[str, Tensor]:
        """Specialist d's window (E, W, n_d, F_w) (a copy: the env's next step overwrites its view)
        and the recurrent state it holds (E, S), at envs `rows` (all if None); none for the MLP."""
        specialist, inputs = self.specialist(d), {}
        if specialist.reads_window:
            window = env.specialist_window(d)
            inputs["window"] = torch.tensor(window if rows is None else window[rows], dtype=torch.float32)
        if specialist.state_size:
            inputs["state"] = self.states[d] if rows is None else self.states[d][torch.as_tensor(rows)]
        return inputs

    # ------------------------------------------------------------------ one decision
    @torch.no_grad()
    def decide(self, env: VecMarketEnv, deterministic: bool = False,
               deterministic_specialists: bool | None = None) -> Decision:
        """Choose target weights for every env at its current bar; updates the meta's hold.
        `deterministic` acts with policy means at both levels; `deterministic_specialists`, if
        given, overrides it for the specialists (phase 2: a learning meta over frozen specialists
        that act as they will in evaluation)."""
        specialists_deterministic = deterministic if deterministic_specialists is None else deterministic_specialists
        E, D = env.num_envs, len(self.domain_names)
        meta_obs = torch.as_tensor(env.meta_observation(), dtype=torch.float32)
        acts = self.clock % self.config.meta_period == 0
        verdict, voted = None, None
        if self.consensus is not None:   # every bar: each voter's return of the bar just closed
            self.consensus.update(voter_returns(env.state.domain_return), self.clock > 0)
        if acts.any():
            if self.fixed_meta:
                self.allocation[acts], self.appetite[acts] = 1.0 / D, 1.0
            elif self.consensus is not None:
                voted, verdict = np.flatnonzero(acts), self.vote(env, acts)
                adopted = ~verdict.held
                self.allocation[voted[adopted]] = verdict.allocation[adopted]
                self.appetite[voted[adopted]] = verdict.appetite[adopted]
            else:
                allocation, appetite, _ = self.meta.act(meta_obs[acts], deterministic)
                self.allocation[acts] = allocation.double().numpy()
                self.appetite[acts] = appetite.double().numpy()
        self.clock += 1
        env.set_guidance(self.allocation, self.appetite)

        inputs, coordination = self.observe_specialists(env)
        allocation_t = torch.as_tensor(self.allocation, dtype=torch.float32)
        appetite_t = torch.as_tensor(self.appetite, dtype=torch.float32)
        signals = np.zeros((E, len(self.domain_index)))
        steps = []
        for d, (domain_obs, instrument_obs) in enumerate(inputs):
            specialist = self.specialist(d)
            given = allocation_t[:, d]
            sequence = self.sequence_inputs(env, d)
            dist, next_state = specialist.policy_step(domain_obs, instrument_obs, given, appetite_t, **sequence)
            if next_state is not None:
                self.states[d] = next_state
            latent = dist.mean if specialists_deterministic else dist.sample()
            # nothing learns from a deterministic step: no log-prob or value to compute
            log_prob = torch.zeros(E) if specialists_deterministic else dist.log_prob(latent).sum(-1)
            steps.append(SpecialistStep(domain_obs, instrument_obs, given, appetite_t, latent, log_prob,
                                        torch.zeros(E), sequence))
            signals[:, self.members[d]] = torch.tanh(latent).double().numpy()
        if not specialists_deterministic:
            values = self.specialist_values([step.domain_obs for step in steps], allocation_t, appetite_t)
            for step, value in zip(steps, values):
                step.value = value
        targets = compose_weights(signals, self.allocation, self.appetite, self.domain_index,
                                  self.config.max_leverage)
        return Decision(steps, meta_obs, acts, self.allocation.copy(), self.appetite.copy(), signals,
                        targets, coordination, verdict, voted)

    def specialist_values(self, domain_obs: list[Tensor], allocation: Tensor, appetite: Tensor) -> list[Tensor]:
        """Each specialist's value (E,) of its domain's reward from its encoder input (E, F_d) per
        domain, the allocation (E, D) and appetite (E,): its own value head, or the central
        critic's column (MAPPO)."""
        if self.central_critic is not None:
            return list(self.central_critic.values(domain_obs, allocation, appetite).unbind(1))
        return [self.specialist(d).value(obs, allocation[:, d], appetite) for d, obs in enumerate(domain_obs)]

    def vote(self, env: VecMarketEnv, acts: np.ndarray) -> Verdict:
        """The consensus in the envs of bool mask `acts` (`hierarchy.consensus`): each specialist's
        conviction is the mean |position| of its policy means under the guidance in force; the
        overlay reads the drawdown, its kill switch's level and the domains' volatilities."""
        D = len(self.domain_names)
        covariance = env.covariance()[acts]                                   # (V, N, N)
        coordination = domain_correlations(env.weights[acts], covariance, self.domain_index, D)
        inputs = self.specialist_inputs(env.observation[acts], coordination)
        allocation = torch.as_tensor(self.allocation[acts], dtype=torch.float32)
        appetite = torch.as_tensor(self.appetite[acts], dtype=torch.float32)
        rows = np.flatnonzero(acts)
        convictions = np.stack([torch.tanh(self.specialist(d)(*inputs[d], allocation[:, d], appetite,
                                                              **self.sequence_inputs(env, d, rows))[0])
                                .abs().mean(-1).double().numpy() for d in range(D)], axis=1)   # (V, D)
        specialist_allocation, specialist_appetite = specialist_proposals(convictions)
        vol = np.sqrt(np.maximum(np.einsum("enn->en", covariance), 0.0))                  # (V, N)
        domain_vol = np.stack([vol[:, self.members[d]].mean(axis=1) for d in range(D)], axis=1)
        max_drawdown = env.overlay.tracker.max_drawdown if isinstance(env.overlay, RiskHook) else 1.0
        overlay_allocation, overlay_appetite, overlay_confidence = overlay_proposal(
            env.drawdown[acts], max_drawdown, domain_vol)
        proposals = Proposals(np.concatenate([specialist_allocation, overlay_allocation[:, None]], axis=1),
                              np.concatenate([specialist_appetite, overlay_appetite[:, None]], axis=1),
                              np.concatenate([convictions, overlay_confidence[:, None]], axis=1))
        settings = self.config.consensus
        return vote(proposals, self.consensus.weights()[acts], settings.threshold, settings.review)

    # ------------------------------------------------------------------ audit trail
    def messages(self, decision: Decision, env: VecMarketEnv, e: int) -> list[dict]:
        """Env e's messages of this decision: allocations down, reports up, coordination across,
        and, where the consensus voted, the votes and the decision with its rationale."""
        records = [as_record(AllocationMessage(name, float(decision.allocation[e, d]), float(decision.appetite[e])))
                   for d, name in enumerate(self.domain_names)]
        state = env.state
        weights = env.weights[e]
        for d, name in enumerate(self.domain_names):
            held = weights[self.members[d]]
            records.append(as_record(PerformanceReport(
                name, float(state.domain_return[e, d]), float(state.domain_performance[e, d]),
                float(np.abs(held).sum()), float(held.sum()))))
        records += [as_record(s) for s in coordination_signals(decision.coordination[e], self.domain_names,
                                                               self.config.coordination_threshold)]
        if decision.verdict is not None and e in decision.voted:
            row = int(np.flatnonzero(decision.voted == e)[0])
            records += [as_record(m) for m in verdict_records(decision.verdict, row, self.voters, self.domain_names,
                                                              self.config.consensus.threshold)]
        return records
