import numpy as np
import pytest
import torch
from scipy.special import logsumexp


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def brute_posterior(x, y, sigma):
    """Float64 numpy reference: weights [B, n] of softmax(-||x - y||^2 / (2 sigma^2)) by broadcasting."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(x),))
    logits = -((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * sigma[:, None] ** 2)
    logz = logsumexp(logits, axis=1)
    w = np.exp(logits - logz[:, None])
    ent = -(w * np.where(w > 0, np.log(np.where(w > 0, w, 1)), 0)).sum(1)
    return w, ent, logz


@pytest.fixture
def brute():
    return brute_posterior
