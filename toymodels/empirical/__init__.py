"""The exact empirical engine: the optimal (fully memorizing) denoiser of a training set, computed exactly.

Public: :class:`EmpiricalDenoiser` (``D*``, with its ``posterior`` and ``sample_reusing``),
:class:`SmoothedDenoiser` (its error-prone smoothing) and :class:`ShardedEmpiricalDenoiser` (``D*`` over a
training set split across ``torch.distributed`` ranks). The estimator's ``kernel=`` argument chooses among
the private kernels, as scikit-learn's ``neighbors`` chooses its trees by ``algorithm=``:

* ``_torch``: ``kernel='torch'``, the streaming (flash-attention style) posterior by GEMMs, any d, CPU or GPU;
  on CPU each block goes through ``_fused_fold``;
* ``_numba``: ``kernel='numba'``, one fused numba pass per query by exact differences, low d, CPU;
* ``_pruned``: ``kernel='pruned'`` (``'auto'`` for d <= 8 on CPU), ``_numba`` behind a KD-tree that skips
  the pairs of negligible weight, and ``_far_series`` at large sigma, both certified;
* ``_vector_exp``: the branch-free ``exp`` the numba kernels vectorize;
* ``_reusing_sampler`` and its loops ``_reusing_loops``: the Heun trajectories of ``sample_reusing``.

The engine's pieces that other layers share (streamed distances, the K smallest per row, reductions across
ranks) stay in the core: :mod:`memgen.pairwise`, :mod:`memgen.smallest`, :mod:`memgen.distributed_reduce`.
"""
from .denoiser import EmpiricalDenoiser, SmoothedDenoiser
from .sharded import ShardedEmpiricalDenoiser

__all__ = ["EmpiricalDenoiser", "SmoothedDenoiser", "ShardedEmpiricalDenoiser"]
