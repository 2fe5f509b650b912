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


def brute_stats(x, y, sigma, rows: int = 64):
    """Float64 ``(mean, entropy, log normalizer)`` of :func:`brute_posterior`, ``rows`` queries at a time."""
    y = np.asarray(y, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(x),))
    parts = [brute_posterior(x[i:i + rows], y, sigma[i:i + rows]) for i in range(0, len(x), rows)]
    return (np.concatenate([w @ y for w, _, _ in parts]), np.concatenate([e for _, e, _ in parts]),
            np.concatenate([z for _, _, z in parts]))


def centre_and_radius(y):
    """The training mean (float64) and the largest distance of a point from it, as the kernels take them."""
    c = np.asarray(y, dtype=np.float64).mean(0)
    return c, float(np.sqrt(((y - c) ** 2).sum(1).max()))


@pytest.fixture
def brute():
    return brute_posterior


def _raised_and_peak(call):
    """``(exception raised by call(), peak bytes traced while it ran)``: a hostile file must be refused
    before anything large is allocated."""
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    except Exception as e:                                           # noqa: BLE001 (returned to be checked)
        return e, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("the call did not raise")


@pytest.fixture
def peak_bytes():
    return _raised_and_peak
