"""Markets: the validated `MarketData` container, the synthetic and real sample universes, file
loaders, and the vectorized Numba simulator with its gymnasium environments."""
