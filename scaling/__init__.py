"""Scaling laws for the optimal learning rate and batch size: optimum finding per scale,
robust power-law fits with intervals, published laws, recommendations. (Built by the
scaling issue.)"""
