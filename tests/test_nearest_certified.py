"""The certified nearest-two search against float64 brute force, and its parts against references."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import compare.neighbours as neighbours
from compare.neighbours import candidates, nearest_two, search_error
from memgen.smallest import merge_smallest, new_list, pair_sq_distances


def _brute_sq(q, y):
    q64, y64 = q.reshape(len(q), -1).double(), y.reshape(len(y), -1).double()
    return (q64.unsqueeze(1) - y64.unsqueeze(0)).square().sum(2)            # [m, n], exact differences


def _check(q, y, nb):
    """Distances equal the two smallest of float64 brute force; the indices sit at those distances."""
    d2 = _brute_sq(*(a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a)) for a in (q, y)))
    top = d2.sort(1).values[:, :2]
    dist, idx = torch.as_tensor(np.asarray(nb.distances)), torch.as_tensor(np.asarray(nb.indices))
    np.testing.assert_allclose(dist.square().numpy(), top.numpy(), rtol=1e-12, atol=1e-12)
    assert bool((idx[:, 0] != idx[:, 1]).all())
    np.testing.assert_allclose(d2.gather(1, idx).numpy(), top.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("contiguous", [True, False])     # the fused CPU kernel, and the torch.topk path
def test_merge_smallest_keeps_the_k_smallest_of_all_blocks(contiguous):
    g = torch.Generator().manual_seed(0)
    B, n, k = 7, 103, 5
    gram, col = torch.randn(B, n, generator=g), torch.randn(n, generator=g)
    best_v, best_i = new_list(B, k, torch.float32, "cpu")
    for j0 in range(0, n, 10):                              # 11 blocks, the last one short
        block = gram[:, j0:j0 + 10].clone()
        if not contiguous:
            block = block.T.contiguous().T
        merge_smallest(block, col[j0:j0 + 10], -2.0, best_v, best_i, j0)
    full = col + -2.0 * gram
    ref = full.topk(k, dim=1, largest=False)
    assert torch.equal(best_v, ref.values) and torch.equal(best_i, ref.indices)


def test_pair_sq_distances_on_tensors_and_memory_maps(tmp_path):
    g = torch.Generator().manual_seed(1)
    q, y = torch.randn(6, 9, generator=g), torch.randn(20, 9, generator=g, dtype=torch.float64)
    qi, yi = torch.tensor([0, 0, 3, 5, 5]), torch.tensor([19, 2, 7, 0, 19])
    ref = (q[qi].double() - y[yi]).square().sum(1)
    np.save(tmp_path / "y.npy", y.numpy())
    for store in (y, y.float(), np.load(tmp_path / "y.npy", mmap_mode="r")):
        want = ref if not isinstance(store, torch.Tensor) or store.dtype == torch.float64 else \
            (q[qi].double() - y.float()[yi].double()).square().sum(1)
        torch.testing.assert_close(pair_sq_distances(q, store, qi, yi), want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("store", ["float32", "float64", "memmap", "strided", "bfloat16", "float16-numpy"])
@pytest.mark.parametrize("centred", [False, True])
def test_centred_sq_norms_against_exact_float64(store, centred, tmp_path):
    """``||y_j - c||^2`` of the rows as stored, against the float64 sum of the float64 differences (each
    rounded once; the sum within gamma_d), for the numba pass (CPU float32/64, memory-mapped, strided)
    and the torch blocks (bfloat16; a float16 numpy array)."""
    from memgen.pairwise import centred_sq_norms, squared_norms

    g = torch.Generator().manual_seed(5)
    y = torch.randn(301, 40, generator=g) * 3 + 7          # far from the origin: cancellation if centred in float32
    np.save(tmp_path / "y.npy", y.numpy())
    data = {"float32": y, "float64": y.double(), "memmap": np.load(tmp_path / "y.npy", mmap_mode="r"),
            "strided": y.T.contiguous().T, "bfloat16": y.bfloat16(), "float16-numpy": y.half().numpy()}[store]
    rows = torch.as_tensor(np.array(data) if isinstance(data, np.ndarray) else data).double()
    c = torch.full((40,), 7.0, dtype=torch.float64) + 0.1 * torch.randn(40, generator=g, dtype=torch.float64)
    want = (rows - c).square().sum(1) if centred else rows.square().sum(1)
    got = centred_sq_norms(data, c if centred else None)
    assert got.dtype == torch.float64 and got.shape == (301,)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)
    if isinstance(data, torch.Tensor) and not centred:
        tol = max(torch.finfo(data.dtype).eps, 1e-14)      # the float64 sum, rounded once to the data's dtype
        torch.testing.assert_close(squared_norms(data), want.to(data.dtype), rtol=tol, atol=0)


@pytest.mark.parametrize("store", ["float32", "float64", "strided", "bfloat16"])
def test_row_dots_against_float64(store):
    """``u_b . c`` in float64 from the rows as stored (numba for CPU float32/64, torch for bfloat16)."""
    from memgen.pairwise import row_dots

    g = torch.Generator().manual_seed(6)
    u = torch.randn(97, 300, generator=g) * 5
    data = {"float32": u, "float64": u.double(), "strided": u.T.contiguous().T, "bfloat16": u.bfloat16()}[store]
    c = torch.randn(300, generator=g, dtype=torch.float64) + 3
    got = row_dots(data, c)
    terms = data.double() * c                               # the products of the stored rows, rounded once
    assert got.dtype == torch.float64 and got.shape == (97,)
    torch.testing.assert_close(got, terms.sum(1), rtol=0, atol=float(300 * 2 ** -52 * terms.abs().sum(1).max()))


def test_short_parallel_loops_run_on_one_thread():
    """numba_like_torch(work=...) gives numba one thread below SHORT_WORK elements and torch's count (at most
    numba's pool) at or above it, and restores numba's setting after."""
    import numba

    from memgen.threads import SHORT_WORK, numba_like_torch

    before = numba.get_num_threads()
    want = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    for work, threads in ((0, 1), (SHORT_WORK - 1, 1), (SHORT_WORK, want), (None, want)):
        with numba_like_torch(work=work):
            assert numba.get_num_threads() == threads
        assert numba.get_num_threads() == before


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.floats(1e-3, 1e3), st.floats(-1e4, 1e4), st.booleans(), st.integers(0, 2 ** 16))
def test_search_error_bounds_the_float32_rounding(f, scale, offset, centred, seed):
    g = torch.Generator().manual_seed(seed)
    y = ((torch.rand(40, f, generator=g) * 2 - 1) * scale + offset).float()
    q = ((torch.rand(5, f, generator=g) * 2 - 1) * scale * 3 + offset).float()
    shift = y[:8].double().mean(0).float() if centred else None
    u = q if shift is None else q - shift
    vals, idx, radius_sq = candidates(u, y, shift, None, y.shape[0], chunk=7)
    c = torch.zeros(f, dtype=torch.float64) if shift is None else shift.double()
    u64, v64 = q.double() - c, y.double() - c
    exact = (v64.square().sum(1)[idx] - 2 * (u64 @ v64.T).gather(1, idx))
    base = u64.square().sum(1)
    bound = search_error(f, torch.float32, radius_sq, base)
    assert bool(((vals.double() - exact).abs() <= bound.unsqueeze(1)).all())


@pytest.mark.parametrize("case", ["ties", "duplicates", "n_below_chunk", "n_not_multiple", "n_at_most_k",
                                  "offset", "float64", "memmap"])
def test_nearest_two_equals_float64_brute_force(case, tmp_path):
    g = torch.Generator().manual_seed(2)
    budget = 2 ** 14
    if case == "ties":                                     # an integer grid: many exact ties
        y, q = torch.randint(0, 3, (60, 4), generator=g).float(), torch.randint(0, 3, (50, 4), generator=g).float()
    elif case == "duplicates":                             # every point 2 to 12 times
        base = torch.randn(30, 16, generator=g)
        y = base.repeat_interleave(torch.randint(2, 13, (30,), generator=g), dim=0)
        q = base[:20] + 0.01 * torch.randn(20, 16, generator=g)
    elif case == "n_below_chunk":
        y, q, budget = torch.randn(12, 8, generator=g), torch.randn(9, 8, generator=g), 2 ** 22
    elif case == "n_not_multiple":                         # chunks of a few rows, the last one short
        y, q, budget = torch.randn(211, 8, generator=g), torch.randn(9, 8, generator=g), 600
    elif case == "n_at_most_k":
        y, q = torch.randn(5, 8, generator=g), torch.randn(9, 8, generator=g)
    elif case == "offset":                                 # far from the origin: rows centred as read
        y = torch.rand(300, 3, 4, 4, generator=g) * 2 - 1 + 3.0
        q = torch.rand(40, 3, 4, 4, generator=g) * 2 - 1 + 3.0
    elif case == "float64":
        y, q = torch.randn(300, 20, generator=g, dtype=torch.float64), torch.randn(40, 20, generator=g, dtype=torch.float64)
    else:
        np.save(tmp_path / "y.npy", (torch.rand(300, 20, generator=g) + 5).numpy())
        y, q = np.load(tmp_path / "y.npy", mmap_mode="r"), torch.rand(40, 20, generator=g) + 5
    dtype = torch.float64 if case == "float64" else torch.float32
    nb = nearest_two(q, y, budget=budget, dtype=dtype, progress=False)
    _check(q, y, nb)


def test_only_uncertified_queries_are_searched_again_in_float64(monkeypatch):
    g = torch.Generator().manual_seed(3)
    y = torch.rand(500, 64, generator=g) * 2 - 1
    y[100:110] = y[99]                   # 11 copies, more than the candidates: a query there cannot certify
    q = torch.cat([y[99:100] + 1e-3, torch.rand(30, 64, generator=g) * 2 - 1])
    seen = []
    real = neighbours.nearest_block
    monkeypatch.setattr(neighbours, "nearest_block", lambda q, *a, **k: seen.append((len(q), q.dtype)) or real(q, *a, **k))
    nb = nearest_two(q, y, progress=False)
    _check(q, y, nb)
    assert seen == [(31, torch.float32), (1, torch.float64)]
    assert set(nb.indices[0].tolist()) <= set(range(99, 110))


@pytest.mark.parametrize("store", ["tensor", "numpy", "bfloat16", "float64"])
def test_sample_center_is_the_mean_of_evenly_spaced_rows(store):
    """The search's centre: the float64 mean of ``rows`` evenly spaced rows and their largest distance to it,
    whatever the store (numpy on one thread, bfloat16 through torch)."""
    from memgen.pairwise import sample_center

    y = torch.randn(1001, 7, generator=torch.Generator().manual_seed(3))
    data = {"tensor": y, "numpy": y.numpy(), "bfloat16": y.bfloat16(), "float64": y.double()}[store]
    center, radius = sample_center(data, rows=11)
    pts = torch.as_tensor(data[::100]).double()                       # rows 0, 100, ..., 1000
    torch.testing.assert_close(center, pts.mean(0), rtol=0, atol=1e-15)
    assert radius == pytest.approx(float((pts - pts.mean(0)).norm(dim=1).max()), rel=1e-14)


def test_bfloat16_training_set():
    """A bfloat16 set (no numpy view: its candidate distances are recomputed by torch) gives the pair of
    float64 brute force over the points as stored (it raised a TypeError before)."""
    g = torch.Generator().manual_seed(4)
    y, q = torch.randn(500, 16, generator=g).bfloat16(), torch.randn(20, 16, generator=g)
    _check(q, y, nearest_two(q, y, progress=False))
