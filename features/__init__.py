"""Causal features: technical indicators, covariance, macro, sentiment and HMM regimes, and the
pipeline that turns a `MarketData` into float32 feature tensors."""
