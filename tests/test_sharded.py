"""Sharded exact reductions over 2 gloo ranks (spawned CPU processes) equal the single-process results."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from compare.neighbours import nearest_two, sharded_nearest_two
from memgen.distributed_reduce import shard_range
from toymodels import EmpiricalDenoiser
from toymodels.empirical import ShardedEmpiricalDenoiser

N, D, B = 101, 6, 9
SIGMAS = [1e-3, 0.1, 1.0, 30.0]


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    y = (torch.randn(N, D, generator=g, dtype=torch.float64) + 3).to(dtype)
    x = torch.cat([y[:3] + 0.01, torch.randn(B - 3, D, generator=g, dtype=torch.float64).to(dtype) * 2 + 3])
    return y, x


DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _rank(rank, size, init, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        for name, dtype in DTYPES.items():
            lo, hi = shard_range(N, rank, size)
            mm = np.load(f"{folder}/{name}.npy", mmap_mode="r")[lo:hi]    # each rank streams its rows
            _, x = _inputs(dtype)
            model = ShardedEmpiricalDenoiser(mm, budget=2 ** 13)            # several chunks per shard
            res = {"start": model.start, "n_total": model.n_total}
            for s in SIGMAS:
                post = model.posterior(x, s, topk=4)
                res[s] = (model(x, s), post.weights, post.indices, post.entropy, post.log_normalizer)
            nb = sharded_nearest_two(x, mm, budget=2 ** 13, progress=False)
            res["nn"] = (nb.distances, nb.indices)
            torch.save(res, f"{folder}/{name}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One spawn of 2 gloo ranks for both dtypes (process start-up dominates the cost)."""
    folder = tmp_path_factory.mktemp("sharded")
    for name, dtype in DTYPES.items():
        np.save(folder / f"{name}.npy", _inputs(dtype)[0].numpy())
    mp.spawn(_rank, args=(2, f"file://{folder / 'rendezvous'}", str(folder)), nprocs=2, join=True)
    return folder


@pytest.mark.parametrize("name", list(DTYPES))
def test_two_gloo_ranks_equal_one_process(name, two_ranks):
    dtype = DTYPES[name]
    y, x = _inputs(dtype)
    ref = EmpiricalDenoiser(y, kernel="torch")
    tol = dict(rtol=1e-11, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    nn = nearest_two(x, y, progress=False)
    for rank in range(2):
        res = torch.load(two_ranks / f"{name}.{rank}")
        assert res["n_total"] == N and res["start"] == shard_range(N, rank, 2)[0]
        for s in SIGMAS:
            mean, w, idx, ent, logz = res[s]
            post = ref.posterior(x, s, topk=4)
            torch.testing.assert_close(mean, ref(x, s), **tol)
            torch.testing.assert_close(w, post.weights, **tol)
            torch.testing.assert_close(ent, post.entropy, **tol)
            # float32 logits carry the rounding of the distance expansion, ~eps R^2 / sigma^2 (R: data radius)
            R2 = float((torch.cat([x, y]).double() - y.double().mean(0)).square().sum(1).max())
            ltol = tol if dtype == torch.float64 else dict(rtol=0, atol=1e-5 + 20 * 6e-8 * R2 / (2 * s ** 2))
            torch.testing.assert_close(logz, post.log_normalizer, **ltol)
            clear = (post.weights[:, :-1] - post.weights[:, 1:]).abs().min(1).values > 1e-4    # no near-ties
            assert torch.equal(idx[clear], post.indices[clear])
        torch.testing.assert_close(res["nn"][0], torch.as_tensor(nn.distances), rtol=1e-12, atol=1e-12)
        assert torch.equal(res["nn"][1], torch.as_tensor(nn.indices))


def test_shard_range_covers_all_rows_once():
    for n in [1, 7, 100, 101]:
        for size in [1, 2, 3, 8]:
            rows = [shard_range(n, r, size) for r in range(size)]
            assert rows[0][0] == 0 and rows[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
            assert max(h - lo for lo, h in rows) - min(h - lo for lo, h in rows) <= 1
    with pytest.raises(ValueError, match="rank"):
        shard_range(10, 2, 2)
