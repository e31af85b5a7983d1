"""`python -m envs.demo`: build the embedded synthetic market, validate it, print its summary."""

from __future__ import annotations

import argparse
import time

import pandas as pd

from envs.loading import MarketConfig, load_market, split_market
from envs.summary import instrument_summary, regime_occupancy
from envs.synthetic import SyntheticConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--years", type=float, default=10.0)
    args = parser.parse_args(argv)

    config = MarketConfig(synthetic=SyntheticConfig(seed=args.seed, alpha=args.alpha, years=args.years))
    start = time.perf_counter()
    market = load_market(config)                       # validated on construction
    seconds = time.perf_counter() - start
    splits = split_market(market, config.split)
    print(f"market {market.name}: {market.n_instruments} instruments x {market.n_bars} bars "
          f"({market.timestamps[0]:%Y-%m-%d} to {market.timestamps[-1]:%Y-%m-%d}), seed {args.seed}, "
          f"alpha {args.alpha}; built and validated in {seconds:.2f} s")
    print("splits: " + ", ".join(f"{part} {len(splits[part].timestamps)} bars" for part in
                                 ("train", "validation", "test")) + f" (embargo {config.split.embargo_bars})")
    print(f"domains: { {d: market.instruments_of(d) for d in market.domain_names} }")
    print(f"macro: {', '.join(market.macro_names)}; sentiment channel: "
          f"{'yes' if market.sentiment is not None else 'no'}\n")
    with pd.option_context("display.float_format", "{:+.3f}".format, "display.width", 160,
                           "display.max_columns", None):
        print(instrument_summary(market))
        print()
    print(regime_occupancy(market).to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
