"""The data: a fixed order-2 Markov chain over ``vocab`` tokens and sequences drawn from it."""

from __future__ import annotations

import numpy as np

CHAIN_SEED = 2024  # the chain is the same for every trial seed: only the sampled sequences differ


def transition_cdf(vocab: int, concentration: float) -> np.ndarray:
    """Cumulative next-token probabilities per (previous-but-one, previous) token pair:
    ``(vocab, vocab, vocab)``, each row a Dirichlet(``concentration``) draw."""
    rows = np.random.default_rng(CHAIN_SEED).dirichlet(np.full(vocab, concentration), size=(vocab, vocab))
    return np.cumsum(rows, axis=-1)


def sample_sequences(rng: np.random.Generator, cdf: np.ndarray, n: int, length: int) -> np.ndarray:
    """``n`` sequences of ``length`` tokens (int64), the first two uniform, then the chain."""
    vocab = cdf.shape[0]
    tokens = np.empty((n, length), dtype=np.int64)
    tokens[:, :2] = rng.integers(vocab, size=(n, 2))
    u = rng.random((n, length))
    for t in range(2, length):
        row = cdf[tokens[:, t - 2], tokens[:, t - 1]]  # (n, vocab)
        tokens[:, t] = np.minimum((u[:, t, None] > row).sum(axis=1), vocab - 1)
    return tokens
