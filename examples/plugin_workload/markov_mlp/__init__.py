"""An lrsweep workload plugin: an MLP language model on a synthetic order-2 Markov chain."""

from __future__ import annotations

from markov_mlp.workload import MarkovMLP

__all__ = ["MarkovMLP"]
