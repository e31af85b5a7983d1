"""The decision service: a trained run exported as a self-contained artifact, served bar by bar
with the backtest's decisions, a paper-trading book, compliance rules, a kill switch and a
hash-chained audit log."""
