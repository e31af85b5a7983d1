"""`PaperBook`: one paper-trading account advanced by the simulator's own kernels.

It is a `VecMarketEnv` of one env whose tables hold two rows, the decision bar and the bar its
orders fill on, rolled forward as each bar arrives: the fills, costs, financing, margin calls
and the observation are computed by `envs.kernels` exactly as in a backtest, and the views the
hierarchy reads (observation, guidance, covariance, weights) are the env's own methods.
"""

from __future__ import annotations

import numpy as np

from envs import kernels, views
from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.state import allocate_outputs, allocate_state, cost_rates, kernel_params
from envs.tables import MarketTables
from envs.vec_env import VecMarketEnv

DECISION, FILL = 0, 1     # rows of the two-row tables while a step runs


class PaperBook(VecMarketEnv):
    """One account (E = 1) on a universe of N instruments in D domains (see module docstring)."""

    def __init__(self, universe: MarketData, config: EnvConfig, n_features: int, n_global: int) -> None:
        """`universe`: the instruments, domains, costs and bar frequency (its bars are not read);
        the observation has `n_features` per instrument and `n_global` global columns."""
        # VecMarketEnv's constructor builds tables for a whole market; the book fills its own
        config.check()
        self.market, self.config, self.num_envs, self.copy, self.overlay = universe, config, 1, True, None
        self.domain_index = universe.domain_index
        N, n_domains = len(self.domain_index), len(universe.domain_names)
        self.layout = views.ObservationLayout(n_instruments=N, n_features=n_features, n_domains=n_domains,
                                              portfolio_window=config.portfolio_window, n_global=n_global)
        self.domain_members = views.domain_members(self.domain_index, n_domains)
        self.costs = cost_rates(universe.costs)
        self.params = kernel_params(config, universe)
        self.state = allocate_state(1, N, n_domains, config.portfolio_window)
        self.outputs = allocate_outputs(1, N, n_domains)
        self.observation = np.zeros((1, self.layout.size), dtype=np.float32)
        self.tables: MarketTables | None = None
        self._covariance: np.ndarray | None = None
        self._window = None                                   # env.window: the export refuses it

    @property
    def opened(self) -> bool:
        return self.tables is not None

    def open(self, row: MarketTables) -> None:
        """Start flat, all cash, at this bar (the first decision bar), as an evaluation env's
        reset does at its first decision bar."""
        self.tables = MarketTables(*(np.ascontiguousarray(np.concatenate([r, r])) for r in row))
        one = np.zeros(1, dtype=np.int64)
        kernels.reset(one, one + FILL, one + FILL + 1, self.tables, self.params, self.domain_index, self.state,
                      self.observation)
        self._covariance = None

    def advance(self, targets: np.ndarray, row: MarketTables) -> dict[str, np.ndarray]:
        """Fill the last decision's targets (1, N) (NaN: hold) on this bar, mark to its close and
        book the step; returns what the step reports (a copy of each output)."""
        if self.tables is None:
            raise RuntimeError("the book is not open: call open(row) with the first decision bar")
        for held, new in zip(self.tables, row):
            held[DECISION] = held[FILL]
            held[FILL] = new[0]
        self.state.bar[0], self.state.end_bar[0] = DECISION, FILL + 1
        if kernels.first_invalid_env(targets, self.state) >= 0:
            raise ValueError(f"targets are infinite: {targets}")
        kernels.step(targets, self.tables, self.costs, self.params, self.domain_index, self.state, self.outputs,
                     self.observation)
        self._covariance = None
        return {name: np.array(getattr(self.outputs, name)) for name in self.outputs._fields}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The account, its tables and observation as arrays (empty tables before `open`)."""
        arrays = {f"state.{name}": value for name, value in self.state._asdict().items()}
        if self.tables is not None:
            arrays.update({f"tables.{name}": value for name, value in self.tables._asdict().items()})
        arrays["observation"] = self.observation
        return arrays

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        for name, value in self.state._asdict().items():
            value[...] = arrays[f"state.{name}"]
        if "tables.close" in arrays:
            self.tables = MarketTables(*(np.ascontiguousarray(arrays[f"tables.{name}"])
                                         for name in MarketTables._fields))
        self.observation[...] = arrays["observation"]
        self._covariance = None


