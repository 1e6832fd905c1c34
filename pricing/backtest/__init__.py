"""Backtests of pricing policies on a generated world: scenario, play, figures, report and plots.

`scenario` builds what every policy is given, `play` runs the policies against the true demand with common
random numbers, `evaluation` turns outcomes into ratios to the oracle, `report` runs a world backtest end to
end (as the CLI and the benchmark do) and `plots` draws it. Nothing is imported here, so importing one of them
does not pull in the demand model or matplotlib.
"""
