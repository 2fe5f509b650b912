"""Feature maps (compare/features.py), the cosine memorization score (compare/similarity.py), the FID paths."""
import importlib.util

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from torch import nn

from compare.features import FeatureMap, feature_map, image_preprocess, pixels
from compare.fid import inception_fid
from compare.fidelity import frechet_distance
from compare.similarity import cosine_memorization


def test_feature_map_of_a_module_matches_direct_call_in_any_batching():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    x = torch.randn(10, 3, 6, 6)
    with torch.no_grad():
        ref = net(x)
    for bs in (1, 3, 64):
        assert torch.allclose(feature_map(net, batch_size=bs)(x), ref, atol=1e-6)
    assert feature_map(None) is pixels and feature_map("pixels") is pixels
    assert pixels(x).shape == (10, 108)
    with pytest.raises(ValueError, match="feature_map"):
        feature_map("vgg16")
    with pytest.raises(TypeError, match="fn"):
        FeatureMap(3)


def test_torchvision_feature_maps_name_the_missing_file_or_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        feature_map("inception_v3", weights=tmp_path / "nowhere.pt")
    with pytest.raises(ValueError, match="weights"):
        feature_map("resnet50")
    if importlib.util.find_spec("torchvision") is None:
        torch.save({}, tmp_path / "w.pt")
        with pytest.raises(ImportError, match="torchvision"):
            feature_map("resnet50", weights=tmp_path / "w.pt")


def test_image_preprocess_closed_form():
    x = torch.full((2, 1, 5, 5), 0.2)                           # a constant grey image in [-1, 1]
    out = image_preprocess(7, imagenet_normalize=True)(x)
    assert out.shape == (2, 3, 7, 7)
    expected = (0.6 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out[0, :, 3, 3], expected, atol=1e-6)
    assert torch.allclose(image_preprocess(7, imagenet_normalize=False)(x), torch.full((2, 3, 7, 7), 0.2))
    with pytest.raises(ValueError, match="images"):
        image_preprocess(7, imagenet_normalize=False)(torch.zeros(2, 2, 5, 5))


@pytest.mark.parametrize("seed", range(4))
def test_cosine_memorization_against_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    train = torch.randn(40, 2, 3, 3, generator=g)
    samples = torch.randn(25, 2, 3, 3, generator=g)
    samples[:6] = 0.9 * train[[3, 7, 7, 11, 20, 39]] + 0.05 * torch.randn(6, 2, 3, 3, generator=g)
    lin = nn.Linear(18, 7)
    phi = lambda x: lin(x.reshape(len(x), -1))                 # noqa: E731
    threshold = [0.6, 0.3, 0.9, 0.0][seed]
    res = cosine_memorization(samples, train, feature_map=phi, threshold=threshold, n_boot=200, progress=False)
    with torch.no_grad():
        fs, ft = phi(samples).double().numpy(), phi(train).double().numpy()
    cos = (fs / np.linalg.norm(fs, axis=1, keepdims=True)) @ (ft / np.linalg.norm(ft, axis=1, keepdims=True)).T
    assert np.allclose(res.best, cos.max(1), atol=1e-6)
    assert np.array_equal(res.nearest, cos.argmax(1))
    assert res.score == pytest.approx(np.mean(cos.max(1) > threshold))
    assert res.lo <= res.score <= res.hi
    assert res.summary(model="m")[0]["memorization_score"] == res.score


def test_cosine_score_is_scale_invariant_and_counts_copies():
    g = torch.Generator().manual_seed(5)
    train = torch.randn(30, 12, generator=g)
    samples = torch.cat([train[:4].clone(), torch.randn(6, 12, generator=g)])
    a = cosine_memorization(samples, train, n_boot=50, progress=False)
    b = cosine_memorization(3.7 * samples, train, n_boot=50, progress=False)
    assert np.allclose(a.best, b.best, atol=1e-6)
    assert np.allclose(a.best[:4], 1.0, atol=1e-6) and np.array_equal(a.nearest[:4], np.arange(4))
    with pytest.raises(ValueError, match="threshold"):
        cosine_memorization(samples, train, threshold=1.5)
    with pytest.raises(ValueError, match="all-zero"):
        cosine_memorization(torch.zeros(2, 12), train, progress=False)


def _gaussian_fd(mu_a, ca, mu_b, cb):
    """Closed form between N(mu_a, ca) and N(mu_b, cb)."""
    root = np.real(sqrtm(sqrtm(ca) @ cb @ sqrtm(ca)))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(root))


def test_frechet_distance_against_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    d = 4
    la, lb = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    ca, cb = la @ la.T + 0.5 * np.eye(d), lb @ lb.T + 0.1 * np.eye(d)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    a = rng.multivariate_normal(mu_a, ca, size=60_000)
    b = rng.multivariate_normal(mu_b, cb, size=60_000)
    # exact identity on the sample statistics ...
    exact = _gaussian_fd(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert frechet_distance(a, b) == pytest.approx(exact, rel=1e-9)
    # ... and the population value within sampling error
    assert frechet_distance(a, b) == pytest.approx(_gaussian_fd(mu_a, ca, mu_b, cb), rel=0.03)


def test_frechet_distance_through_a_random_feature_network():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    a, b = torch.rand(50, 3, 8, 8) * 2 - 1, torch.rand(40, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        fa, fb = net(a).double().numpy(), net(b).double().numpy()
    expected = _gaussian_fd(fa.mean(0), np.cov(fa.T), fb.mean(0), np.cov(fb.T))
    assert frechet_distance(a, b, features=feature_map(net, batch_size=16)) == pytest.approx(expected, rel=1e-5)


def test_inception_fid_names_the_missing_file_or_package(tmp_path):
    x = torch.zeros(4, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="weights"):
        inception_fid(x, x, tmp_path / "inception.pth")
    if importlib.util.find_spec("torchmetrics") is None:
        (tmp_path / "inception.pth").write_bytes(b"")
        with pytest.raises(ImportError, match="memgen\\[fid\\]"):
            inception_fid(x, x, tmp_path / "inception.pth")
