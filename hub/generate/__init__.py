"""Synthetic test data: the five agency feeds in their real formats, with the truth behind them."""
