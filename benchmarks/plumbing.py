"""Plumbing lines per science line of ``neural/``, and of NVlabs' EDM training code counted the same way.

    python -m benchmarks.plumbing [--edm PATH_TO_EDM_CHECKOUT] [--out bench-out/plumbing.json]

A module is *science* when what it computes is what a paper's method section describes (a network, its
preconditioning, the loss, the optimizer, one optimizer step, the conversion of a foreign network's output);
it is *plumbing* when it reads, writes, checks, schedules or reports (configuration, run folders,
checkpoints, process groups, file formats, the training loop around the step, the measurement harness).
Every module of ``neural/`` is put in one of the two by :data:`SCIENCE` and :data:`PLUMBING` below, with its
reason; a new module must be added to one of them (``tests/test_layering.py`` checks it, and that the
ratio stays under :data:`MAX_RATIO`).

The count is of *code lines*: lines holding a Python token that is not a comment, and not part of a
docstring (a string statement), so documentation does not count for either side. The ratio is
``plumbing code lines / science code lines``. Physical lines are reported too.

``--edm``: a checkout of https://github.com/NVlabs/edm, counted with the split :data:`EDM_SCIENCE` /
:data:`EDM_PLUMBING` (``training/`` plus the ``torch_utils/`` and ``train.py`` it runs on; ``dnnlib/``,
a general utility library, reported apart).
"""
from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

from memgen.run_files import atomic_write_json

NEURAL = Path(__file__).resolve().parent.parent / "neural"
MAX_RATIO = 2.0
"""The bound issue 24 sets for ``neural/`` (EDM's training code: 1.2 without dnnlib, 1.6 with it)."""

SCIENCE = {
    "unet.py": "the U-Net",
    "layers.py": "the U-Net's blocks",
    "mlp.py": "the residual MLP",
    "presets.py": "the papers' network sizes",
    "precond.py": "EDM and VP preconditioning",
    "external.py": "foreign networks' parameterizations converted to D(x, sigma)",
    "losses.py": "the EDM and DDPM objectives",
    "optim.py": "the optimizers",
    "step.py": "one optimizer step: data order, per-step randomness, warm-up, clipping, EMA",
}
PLUMBING = {
    "__init__.py": "lazy public names",
    "config.py": "settings, their rules, TOML in and out",
    "training.py": "the loop around the step: run folder, resume, save, divergence check",
    "rundir.py": "run-folder lock, links, resume check",
    "checkpoint.py": "checkpoint files and metric rows",
    "measure.py": "the measurement harness: probes, sampling, metric registry",
    "ddp.py": "process groups under torchrun",
    "diffusers_folder.py": "reading and checking a diffusers folder",
}
EDM_SCIENCE = ("training/networks.py", "training/loss.py", "training/augment.py")
EDM_PLUMBING = ("training/__init__.py", "training/dataset.py", "training/training_loop.py", "torch_utils/*.py",
                "train.py")
EDM_UTIL = ("dnnlib/*.py",)


def code_lines(source: str) -> int:
    """Lines of ``source`` holding a token other than a comment, outside every docstring (string statement)."""
    docs = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docs.update(range(node.lineno, node.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(line for line in range(tok.start[0], tok.end[0] + 1) if line not in docs)
    return len(lines)


def count(files) -> dict:
    """``{'code': code lines, 'physical': lines}`` summed over ``files``."""
    texts = [Path(f).read_text() for f in files]
    return {"code": sum(code_lines(t) for t in texts), "physical": sum(len(t.splitlines()) for t in texts)}


def unclassified(folder: Path = NEURAL) -> list[str]:
    """Modules of ``neural/`` in neither :data:`SCIENCE` nor :data:`PLUMBING` (or in both)."""
    names = {p.name for p in folder.glob("*.py")}
    return sorted((names - set(SCIENCE) - set(PLUMBING)) | (set(SCIENCE) & set(PLUMBING)))


def ratios(science: dict, plumbing: dict) -> dict:
    return {kind: plumbing[kind] / science[kind] for kind in ("code", "physical")}


def neural_count(folder: Path = NEURAL) -> dict:
    """Science and plumbing lines of ``neural/`` and their ratios."""
    science, plumbing = count(folder / n for n in SCIENCE), count(folder / n for n in PLUMBING)
    return {"science": science, "plumbing": plumbing, "ratio": ratios(science, plumbing)}


def edm_count(root: Path) -> dict:
    """The same count of an EDM checkout: science, plumbing, dnnlib apart, and the ratio without and with it."""
    def files(patterns):
        return sorted(p for pattern in patterns for p in root.glob(pattern))
    science, plumbing, util = count(files(EDM_SCIENCE)), count(files(EDM_PLUMBING)), count(files(EDM_UTIL))
    with_util = {k: plumbing[k] + util[k] for k in plumbing}
    return {"science": science, "plumbing": plumbing, "dnnlib": util, "ratio": ratios(science, plumbing),
            "ratio_with_dnnlib": ratios(science, with_util)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edm", type=Path, help="a checkout of NVlabs/edm to count the same way")
    p.add_argument("--out", type=Path, default=Path("bench-out/plumbing.json"))
    args = p.parse_args(argv)
    missing = unclassified()
    if missing:
        p.error(f"neural/ modules not classified in benchmarks/plumbing.py: {', '.join(missing)}")
    result = {"neural": neural_count()}
    if args.edm is not None:
        if not (args.edm / "training" / "networks.py").is_file():
            p.error(f"--edm: {args.edm} is not a checkout of NVlabs/edm (no training/networks.py)")
        result["edm"] = edm_count(args.edm)
    for name, r in result.items():
        print(f"{name}: science {r['science']['code']} code lines, plumbing {r['plumbing']['code']}: "
              f"{r['ratio']['code']:.2f} plumbing per science line ({r['ratio']['physical']:.2f} by physical lines)"
              + (f"; with dnnlib {r['ratio_with_dnnlib']['code']:.2f}" if "ratio_with_dnnlib" in r else ""))
    atomic_write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
