"""Risk: VaR and CVaR estimators and backtests, portfolio limits, the overlay that shrinks target
weights into the feasible set, and the drawdown kill switch."""
