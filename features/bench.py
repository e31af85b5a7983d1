"""Feature benchmark: the pipeline per stage on synthetic8 (10 years) and on 500 instruments
(20 years), and the Numba indicators side by side with TA-Lib on the same data.

    python -m features.bench        # prints a table, writes runs/bench/features.json atomically

Timings follow one warm-up run (Numba compilation) and run on one core (BLAS limited to one
thread), as the other benchmarks do. Both markets use the default `FeaturesConfig`: the
covariance summaries are re-estimated every `covariance.stride` = 5 bars (a Ledoit-Wolf estimate
and its spectrum on a 60 x 500 window take about 10 ms).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import talib
from threadpoolctl import threadpool_limits

from envs.synthetic import SyntheticConfig, generate
from features import indicators as ind
from features.config import FeaturesConfig
from features.pipeline import compute_features
from storage.atomic import write_json

OUTPUT = Path("runs/bench/features.json")


def _best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def pipeline_stages(market, config: FeaturesConfig) -> dict[str, float]:
    """Seconds per stage and in total for one build after a warm-up build."""
    train_end = int(0.7 * market.n_bars)
    compute_features(market, config, train_end)
    start = time.perf_counter()
    stages = compute_features(market, config, train_end).stage_seconds
    return {**stages, "total": time.perf_counter() - start}


def indicators_vs_talib(market) -> dict[str, dict[str, float]]:
    """Seconds of each indicator over all instruments: ours batched, TA-Lib column by column."""
    h, l, c, v = (np.ascontiguousarray(market.field(k)) for k in ("high", "low", "close", "volume"))
    cols = [(np.ascontiguousarray(x[:, j]) for x in (h, l, c, v)) for j in range(c.shape[1])]
    cols = [tuple(x) for x in cols]
    cases = {
        "sma_20": (lambda: ind.sma(c, 20), lambda: [talib.SMA(cc, 20) for _, _, cc, _ in cols]),
        "ema_20": (lambda: ind.ema(c, 20), lambda: [talib.EMA(cc, 20) for _, _, cc, _ in cols]),
        "macd": (lambda: ind.macd(c), lambda: [talib.MACD(cc) for _, _, cc, _ in cols]),
        "rsi_14": (lambda: ind.rsi(c), lambda: [talib.RSI(cc) for _, _, cc, _ in cols]),
        "bbands_20": (lambda: ind.bollinger(c), lambda: [talib.BBANDS(cc, 20) for _, _, cc, _ in cols]),
        "atr_14": (lambda: ind.atr(h, l, c), lambda: [talib.ATR(hh, ll, cc) for hh, ll, cc, _ in cols]),
        "obv": (lambda: ind.obv(c, v), lambda: [talib.OBV(cc, vv) for _, _, cc, vv in cols]),
        "roc_20": (lambda: ind.roc(c, 20), lambda: [talib.ROC(cc, 20) for _, _, cc, _ in cols]),
    }
    out = {}
    for name, (ours, theirs) in cases.items():
        ours()
        ours_s, talib_s = _best_of(ours), _best_of(theirs)
        out[name] = {"numba_s": ours_s, "talib_s": talib_s, "ratio": ours_s / talib_s}
    return out


def main() -> None:
    small = generate(SyntheticConfig(years=10, seed=0))
    large = generate(SyntheticConfig(universe="factor", n_instruments=500, years=20, seed=0))
    config = FeaturesConfig(cache=False)
    with threadpool_limits(1):
        results = {
            "synthetic8_10y": {"shape": [small.n_bars, small.n_instruments], **pipeline_stages(small, config)},
            "factor500_20y": {"shape": [large.n_bars, large.n_instruments], **pipeline_stages(large, config)},
            "indicators_factor500_20y": indicators_vs_talib(large),
        }
    for run in ("synthetic8_10y", "factor500_20y"):
        stages = "  ".join(f"{k}={v:.3f}s" for k, v in results[run].items() if isinstance(v, float))
        print(f"{run:16s} {stages}")
    print(f"{'indicator':10s} {'numba_s':>9s} {'talib_s':>9s} {'ratio':>6s}   (500 x 5040)")
    for name, row in results["indicators_factor500_20y"].items():
        print(f"{name:10s} {row['numba_s']:9.4f} {row['talib_s']:9.4f} {row['ratio']:6.2f}")
    write_json(OUTPUT, results)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
