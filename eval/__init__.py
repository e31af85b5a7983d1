"""Evaluation: backtests, metrics, classical baselines, walk-forward, Monte Carlo and overfitting
statistics, and the report generator that writes the paper's tables and figures."""
