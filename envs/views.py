"""The flat observation's layout, and the per-level views the hierarchy reads from it.

One float32 row per env holds every level's observation, in three contiguous blocks:

    instrument block   N x (F features, weight, unrealised_pnl, allocation, risk_appetite)
    domain block       D x (gross_exposure, net_exposure, last_return, performance)
    meta-only block    W portfolio log returns (oldest first), volatility, drawdown,
                       gross_leverage, log_equity, then the global columns of the tables
                       (correlation upper triangle, global features, regime probabilities)

weight is position / equity at the bar's close (drifted since the fill), unrealised_pnl is
(position - average-cost basis) / equity, allocation and risk_appetite are what the level above
last set (`VecMarketEnv.set_guidance`); last_return and performance are the domain's summed
instrument rewards of the last step and their EWMA.

The meta observation is the domain block plus the meta-only block (one slice); a specialist's
observation is its domain's rows of the instrument block plus its domain's state. Both are views
of the observation buffer when the domain's instruments are contiguous in universe order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INSTRUMENT_STATE: tuple[str, ...] = ("weight", "unrealised_pnl", "allocation", "risk_appetite")
DOMAIN_STATE: tuple[str, ...] = ("gross_exposure", "net_exposure", "last_return", "performance")
PORTFOLIO_STATE: tuple[str, ...] = ("volatility", "drawdown", "gross_leverage", "log_equity")
# sizes the kernels write with (module constants compile into them)
N_INSTRUMENT_STATE = len(INSTRUMENT_STATE)
N_DOMAIN_STATE = len(DOMAIN_STATE)
N_PORTFOLIO_STATE = len(PORTFOLIO_STATE)


@dataclass(frozen=True)
class ObservationLayout:
    """Offsets of each block in the flat observation row."""

    n_instruments: int
    n_features: int
    n_domains: int
    portfolio_window: int
    n_global: int

    @property
    def per_instrument(self) -> int:
        return self.n_features + N_INSTRUMENT_STATE

    @property
    def instrument_end(self) -> int:
        return self.n_instruments * self.per_instrument

    @property
    def domain_end(self) -> int:
        return self.instrument_end + self.n_domains * N_DOMAIN_STATE

    @property
    def size(self) -> int:
        return self.domain_end + self.portfolio_window + N_PORTFOLIO_STATE + self.n_global

    def instrument_column(self, name: str) -> int:
        """Column of an instrument-state field inside an instrument's row of the block."""
        return self.n_features + INSTRUMENT_STATE.index(name)

    def portfolio_column(self, name: str) -> int:
        """Column of a portfolio-state field in the flat row."""
        return self.domain_end + self.portfolio_window + PORTFOLIO_STATE.index(name)


def instrument_observation(observation: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """(E, N, F + 4) view: each instrument's features and own state."""
    E = observation.shape[0]
    return observation[:, : layout.instrument_end].reshape(E, layout.n_instruments, layout.per_instrument)


def domain_state(observation: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """(E, D, 4) view of the per-domain state."""
    E = observation.shape[0]
    return observation[:, layout.instrument_end: layout.domain_end].reshape(E, layout.n_domains, N_DOMAIN_STATE)


def specialist_observation(observation: np.ndarray, layout: ObservationLayout, domain: int,
                           members: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Domain `domain`'s specialist inputs: its instruments (E, n_d, F + 4) and state (E, 4).

    `members` are the domain's instruments (from `domain_members`): a slice when contiguous in
    universe order (both arrays are then views), else an index array (the first is a copy).
    """
    return instrument_observation(observation, layout)[:, members], domain_state(observation, layout)[:, domain]


def meta_observation(observation: np.ndarray, layout: ObservationLayout) -> np.ndarray:
    """(E, meta size) view: domain state, portfolio returns and state, global columns."""
    return observation[:, layout.instrument_end:]


def domain_members(domain_index: np.ndarray, n_domains: int) -> list[slice | np.ndarray]:
    """Each domain's instruments: a slice when contiguous (views), else an index array (copies)."""
    members: list[slice | np.ndarray] = []
    for d in range(n_domains):
        index = np.flatnonzero(domain_index == d)
        contiguous = index.size > 0 and index[-1] - index[0] + 1 == index.size
        members.append(slice(int(index[0]), int(index[-1]) + 1) if contiguous else index)
    return members

