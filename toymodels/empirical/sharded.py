"""The exact empirical denoiser of a training set split across ``torch.distributed`` ranks.

Each rank streams its own shard ``S_r`` and keeps the unnormalized state of its part of the posterior,
``m_r = max_{j in S_r} l_j``, ``s_r = sum exp(l_j - m_r)``, ``t_r = sum exp(l_j - m_r)(l_j - m_r)``,
``acc_r = sum exp(l_j - m_r) v_j``; the states are gathered (:mod:`memgen.distributed_reduce`) and merged exactly
(:func:`toymodels.empirical._torch.merge`), so every rank returns ``D*`` of the whole set -- equal to
the single-process result up to the order of the floating-point sums. All ranks share one centre
(the mean of the whole set) and one radius, so their logits carry the same per-query shift.
"""
from __future__ import annotations

import torch

from memgen.pairwise import DEFAULT_BUDGET, centred_summary, column_sum
from memgen.distributed_reduce import all_max, all_sum, gathered, world

from .denoiser import EmpiricalDenoiser
from ._torch import State, centred_queries, finish, merge, streaming_state


class ShardedEmpiricalDenoiser(EmpiricalDenoiser):
    """``D*`` over the union of the ranks' shards; every rank calls it with the same ``(x, sigma)``.

    Args:
        shard: this rank's training points ``[n_r, *shape]`` (tensor or numpy; a memory-mapped slice is
            streamed from disk). Global indices follow rank order: rank 0's rows first.
        group: the ``torch.distributed`` process group (default: the world; one process if none).
        dtype, budget: as for :class:`EmpiricalDenoiser` (the budget is per rank).

    ``posterior`` returns the top-k (``topk`` required): a full ``[B, n]`` weight matrix is what
    sharding exists to avoid.
    """

    def __init__(self, shard, *, group=None, dtype: torch.dtype | None = None, budget: int = DEFAULT_BUDGET):
        self.group = group
        super().__init__(shard, dtype=dtype, budget=budget, kernel="torch")
        sizes = gathered(torch.tensor([self.n]), group).reshape(-1)
        self.start = int(sizes[:world(group)[0]].sum())
        self.n_total = int(sizes.sum())

    def _summary(self, y, dtype):
        count = all_sum(torch.tensor([float(y.shape[0])], dtype=torch.float64), self.group)
        center = all_sum(column_sum(y), self.group) / count
        local = centred_summary(y, center=center, dtype=dtype)
        radius = float(all_max(torch.tensor([local.radius], dtype=torch.float64), self.group))
        return local._replace(radius=radius)

    def _stats(self, x: torch.Tensor, sigma: torch.Tensor, topk: int | None = None, all_weights: bool = False):
        if all_weights:
            raise ValueError("topk: a sharded posterior returns the top-k weights only; pass topk")
        flat = x.reshape(x.shape[0], -1).to(self.center.device)
        sigma = sigma.to(self.center.device)
        u, lower, offset, reserved = centred_queries(flat, self.center, self.radius, self.budget)
        local, extras = streaming_state(u, self.store, self.center, self.sqnorm, offset, sigma, budget=self.budget,
                                        topk=topk, reserved=reserved)
        parts = [gathered(t, self.group) for t in local]
        state = State(*(p[0] for p in parts))
        for r in range(1, parts[0].shape[0]):
            state = merge(state, State(*(p[r] for p in parts)))
        out = finish(state, lower, sigma)
        out["mean"] = out["mean"] + self.center.to(flat.dtype)
        if topk is not None:
            rel, idx = extras["topk"]
            if rel.shape[1] < topk:                   # a shard smaller than k: pad with zero weights
                pad = topk - rel.shape[1]
                rel = torch.cat([rel, rel.new_full((rel.shape[0], pad), -torch.inf)], 1)
                idx = torch.cat([idx, idx.new_zeros((idx.shape[0], pad))], 1)
            shift = (gathered(local.m, self.group) - state.m).unsqueeze(2)       # each rank's m_r - M
            rel = (gathered(rel, self.group) + shift).permute(1, 0, 2).reshape(x.shape[0], -1)
            idx = gathered(idx + self.start, self.group).permute(1, 0, 2).reshape(x.shape[0], -1)
            rel, pos = rel.topk(min(topk, self.n_total), dim=1)
            out["topk_weights"] = (rel - state.s.log().unsqueeze(1)).exp()
            out["topk_indices"] = idx.gather(1, pos)
        return out
