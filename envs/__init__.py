"""Markets: the validated `MarketData` container, the synthetic and real sample universes, file
loaders, and (later) the vectorized Numba simulator with its gymnasium environments."""
