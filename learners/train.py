"""`python -m learners.train`: the hydra entry point of the training curriculum.

It composes `configs/train.yaml`, builds and validates the configured market, and prints the
resolved config and the market's summary. Hydra writes the resolved config to the run folder
(`runs/<experiment>/<timestamp>/.hydra/`).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from envs.loading import load_market, split_market
from envs.summary import instrument_summary
from learners.train_config import TrainConfig, register_configs

register_configs()


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config: TrainConfig = OmegaConf.to_object(cfg)
    print(OmegaConf.to_yaml(cfg))
    market = load_market(config.market)
    splits = split_market(market, config.market.split)
    print(f"market {market.name}: {market.n_instruments} instruments x {market.n_bars} bars; "
          f"train {splits.train.n_bars}, validation {splits.validation.n_bars}, test {splits.test.n_bars}")
    print(instrument_summary(market).to_string(float_format="{:+.3f}".format))


if __name__ == "__main__":
    main()
