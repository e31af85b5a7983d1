"""Market regimes: a Gaussian HMM on return, volatility and VIX-like inputs, fitted on the
training split only, with online (forward-algorithm) filtered probabilities.

The number of states is chosen by BIC from a range. States are relabelled by a fixed rule so that
names are stable across seeds: with three or more states the one of highest mean volatility is
'volatile'; the rest, by mean return from high to low, are 'bull', 'neutral1', ..., 'bear'.
Probabilities at t come from the forward recursion over inputs <= t: never smoothed, never
Viterbi, both of which look ahead.

    python -m features.regimes --seed 0     # score the filtered regime on synthetic8
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from scipy.stats import multivariate_normal

from envs.market_data import MarketData
from envs.synthetic import SyntheticConfig, generate
from features.config import RegimeConfig

RETURN, VOLATILITY = 0, 1        # columns of the HMM inputs that the naming rule reads


def regime_inputs(market: MarketData, smoothing_window: int,
                  train_end: int | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, D) HMM inputs and their names: the cross-sectional mean log return of the bar, the
    mean log realised volatility over `smoothing_window` bars, and log VIX when the market has a
    daily 'vix' that is finite and positive on every training bar ([0, train_end); default:
    every bar). The choice reads training bars only, so no later value changes any bar's inputs;
    a later non-positive or missing VIX makes that row NaN (the filter carries its prediction).
    The first `smoothing_window` rows are NaN (warm-up).

    The return is left unsmoothed: each state's variance of it then carries the regime's volatility
    and co-movement at once, and a smoothed mean would only add detection delay.
    """
    returns = pd.DataFrame(market.log_returns)                                  # (T, N)
    mean_return = returns.mean(axis=1).to_numpy()                               # (T,)
    log_vol = np.log(np.sqrt((returns**2).rolling(smoothing_window, min_periods=smoothing_window)
                             .mean()) + 1e-12).mean(axis=1).to_numpy()         # (T,)
    columns, names = [mean_return, log_vol], ["mean_return", "mean_log_vol"]
    if "vix" in market.macro_names:
        m = market.macro_names.index("vix")
        vix = market.macro[:, m]
        seen = vix[:market.n_bars if train_end is None else train_end]
        if not market.macro_is_monthly[m] and np.isfinite(seen).all() and (seen > 0).all():
            columns.append(np.log(np.where(vix > 0, vix, np.nan)))
            names.append("log_vix")
    X = np.column_stack(columns)
    X[:smoothing_window] = np.nan                   # row 0's return is a placeholder 0
    return X, tuple(names)


def regime_names(n_states: int) -> tuple[str, ...]:
    """Names of `n_states` relabelled states, in output column order."""
    if n_states < 2:
        raise ValueError(f"a regime model needs at least 2 states, got {n_states}")
    calm = n_states - 1 if n_states >= 3 else n_states
    middle = tuple(f"neutral{k}" for k in range(1, calm - 1))
    return ("bull",) + middle + ("bear",) + (("volatile",) if n_states >= 3 else ())


class RegimeDetector:
    """Gaussian HMM regime detector with scikit-learn's shape: `fit` on training inputs,
    `transform` to filtered probabilities (T, K) with columns named by `names_`.

    Inputs are standardised with the training rows' mean and standard deviation (`center_`,
    `scale_`), so that EM sees comparable scales (raw daily returns against log VIX make the
    fitted covariances near singular); `means_` and `covars_` are in those standardised units.
    Each state count gets `n_init` EM runs from different seeds and keeps the most likely.
    """

    def __init__(self, min_states: int = 2, max_states: int = 4, n_iter: int = 200,
                 n_init: int = 3, seed: int = 0) -> None:
        if not 2 <= min_states <= max_states:
            raise ValueError(f"need 2 <= min_states <= max_states, got {min_states}, {max_states}")
        if n_init < 1:
            raise ValueError(f"n_init must be >= 1, got {n_init}")
        self.min_states, self.max_states = min_states, max_states
        self.n_iter, self.n_init, self.seed = n_iter, n_init, seed

    def fit(self, X: np.ndarray, input_names: tuple[str, ...] = ()) -> RegimeDetector:
        """Fit HMMs for every state count on the finite rows of X (D inputs named `input_names`,
        columns RETURN and VOLATILITY first) and keep the one of lowest BIC, with states
        relabelled."""
        self.input_names_ = tuple(input_names)
        rows = X[np.isfinite(X).all(axis=1)]
        if len(rows) < 10 * self.max_states:
            raise ValueError(f"regime detector: only {len(rows)} finite training rows for up to "
                             f"{self.max_states} states; lengthen the training split")
        self.center_ = rows.mean(axis=0)                                       # (D,)
        spread = rows.std(axis=0)
        self.scale_ = np.where(spread > 0, spread, 1.0)                        # (D,)
        Z = (rows - self.center_) / self.scale_
        self.bic_ = {}
        best = None
        for k in range(self.min_states, self.max_states + 1):
            model = self._most_likely_fit(Z, k)
            self.bic_[k] = float(model.bic(Z))
            if best is None or self.bic_[k] < self.bic_[best.n_components]:
                best = model
        order = self._relabel(best.means_)
        self.n_states_ = best.n_components
        self.names_ = regime_names(self.n_states_)
        self.means_ = best.means_[order]                                       # (K, D)
        self.covars_ = best.covars_[order]                                     # (K, D, D)
        self.transmat_ = best.transmat_[np.ix_(order, order)]                  # (K, K)
        self.startprob_ = best.startprob_[order]                               # (K,)
        return self

    def _most_likely_fit(self, Z: np.ndarray, n_states: int) -> GaussianHMM:
        """The most likely of `n_init` EM runs; a run whose covariances break down is skipped."""
        fits = []
        for run in range(self.n_init):
            model = GaussianHMM(n_components=n_states, covariance_type="full", n_iter=self.n_iter,
                                random_state=self.seed + run)
            try:
                model.fit(Z)
            except ValueError:                   # a state collapsed onto too few rows
                continue
            fits.append((model.score(Z), model))
        if not fits:
            raise ValueError(f"regime detector: all {self.n_init} EM runs with {n_states} states broke "
                             "down; narrow the state range or lengthen the training split")
        return max(fits, key=lambda fit: fit[0])[1]

    @staticmethod
    def _relabel(means: np.ndarray) -> np.ndarray:
        """Permutation of fitted states into `regime_names` order."""
        K = len(means)
        states = list(range(K))
        volatile = [int(np.argmax(means[:, VOLATILITY]))] if K >= 3 else []
        calm = sorted((s for s in states if s not in volatile), key=lambda s: -means[s, RETURN])
        return np.array(calm + volatile)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(T, K) filtered probabilities P(state_t | inputs <= t); rows with NaN inputs carry the
        prediction forward without an observation."""
        T = len(X)
        finite = np.isfinite(X).all(axis=1)
        filled = np.where(finite[:, None], (X - self.center_) / self.scale_, self.means_[0])
        log_density = np.column_stack([multivariate_normal.logpdf(filled, mean, cov, allow_singular=True)
                                       for mean, cov in zip(self.means_, self.covars_)])   # (T, K)
        probs = np.empty((T, self.n_states_))
        belief = self.startprob_
        for t in range(T):
            prior = belief if t == 0 else belief @ self.transmat_
            if finite[t]:
                weighted = prior * np.exp(log_density[t] - log_density[t].max())
                belief = weighted / weighted.sum() if weighted.sum() > 0 else prior
            else:
                belief = prior
            probs[t] = belief
        return probs


def score_against_truth(probs: np.ndarray, truth: np.ndarray, train_end: int) -> dict[str, float]:
    """Accuracy and detection delay of the filtered regime on bars >= train_end.

    Each detected state is mapped to the true regime it coincides with most on the training bars
    (learned on training only). Delay: bars from a true switch until the detected regime first
    equals the new one, over switches detected before the regime ends.
    """
    detected = probs.argmax(axis=1)
    K = probs.shape[1]
    train = slice(0, train_end)
    mapping = np.array([np.bincount(truth[train][detected[train] == k], minlength=truth.max() + 1).argmax()
                        if (detected[train] == k).any() else 0 for k in range(K)])
    predicted, actual = mapping[detected][train_end:], truth[train_end:]
    switches = np.flatnonzero(np.diff(actual) != 0) + 1
    delays = []
    for s, end in zip(switches, list(switches[1:]) + [len(actual)]):
        hits = np.flatnonzero(predicted[s:end] == actual[s])
        if hits.size:
            delays.append(int(hits[0]))
    return {"accuracy": float((predicted == actual).mean()),
            "chance": float(np.bincount(actual).max() / len(actual)),
            "switches": float(len(switches)),
            "detected_share": float(len(delays) / max(len(switches), 1)),
            "median_delay_bars": float(np.median(delays)) if delays else float("nan"),
            "mean_delay_bars": float(np.mean(delays)) if delays else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description="Score filtered HMM regimes on synthetic8.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--train", type=float, default=0.7, help="training share of the bars")
    args = parser.parse_args()
    market = generate(SyntheticConfig(years=args.years, seed=args.seed))
    config = RegimeConfig(seed=args.seed)
    train_end = round(market.n_bars * args.train)
    X, names = regime_inputs(market, config.smoothing_window, train_end)
    detector = RegimeDetector(config.min_states, config.max_states, config.n_iter, config.n_init,
                              seed=config.seed).fit(X[:train_end], names)
    scores = score_against_truth(detector.transform(X), market.ground_truth.regime, train_end)
    print(f"synthetic8 seed={args.seed} years={args.years} inputs={names} "
          f"states={detector.n_states_} {detector.names_} BIC={detector.bic_}")
    for key, value in scores.items():
        print(f"  {key:18s} {value:.3f}")


if __name__ == "__main__":
    main()
