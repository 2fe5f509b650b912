"""Heun trajectories that reuse logits after the collapse equal the plain sampler's full passes."""
import pytest
import torch

from memgen import edm_sigmas, sample
from toymodels import EmpiricalDenoiser, GaussianDenoiser


def _clustered(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    centres = (0.5 * torch.randn(12, d, generator=g, dtype=torch.float64)).clamp(-1, 1)
    y = centres[torch.randint(12, (n,), generator=g)] + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return y.clamp(-1, 1), torch.randn(40, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d,seed", [(300, 32, 0), (200, 96, 1)])
def test_same_samples_as_full_passes(n, d, seed):
    y, noise = _clustered(n, d, seed)
    model = EmpiricalDenoiser(y, kernel="torch", budget=2 ** 18)      # several chunks per full pass
    sigmas = edm_sigmas(18, 0.002, 80.0)
    record = []
    got = sample(model, noise, sigmas, reuse=True, record=record)
    ref = sample(model, noise, sigmas)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert float((got - ref).abs().max()) < 1e-9                      # float64: far below the stated 1e-5
    assert len(record) == 35 and record[0]["full"]
    full = [r["full"] for r in record]
    assert not all(full)                                              # the collapsed tail reused the logits
    assert all(r["dropped"] <= n * 1e-12 for r in record)             # the certified bound per call
    assert [r["step"] for r in record] == [i for i in range(18) for _ in range(2 if i < 17 else 1)]


def test_reuse_refuses_other_models_and_methods():
    y, noise = _clustered(50, 4, 2)
    with pytest.raises(TypeError, match="reuse"):
        sample(GaussianDenoiser(torch.zeros(4), torch.ones(4)), noise, edm_sigmas(5, 0.01, 10.0), reuse=True)
    with pytest.raises(ValueError, match="reuse"):
        sample(EmpiricalDenoiser(y), noise, edm_sigmas(5, 0.01, 10.0), method="euler", reuse=True)
    with pytest.raises(ValueError, match="tol"):
        sample(EmpiricalDenoiser(y), noise, edm_sigmas(5, 0.01, 10.0), reuse=True, tol=0)
