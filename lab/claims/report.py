"""The claims report: run the claims, judge them by their stated criteria, and write one report.

The command is ``memgen report`` (:mod:`lab.commands.report`): ``memgen report --out DIR [--scale
quick|cpu|paper] [--only 2,5,9] [--seeds 3] [--jobs 2] [--executor submitit]`` writes, under ``DIR``:

* ``claimNN/``: each claim's figure, numbers and ``outcome.json`` (written when the claim finishes; a later
  call with the same scale, seeds, settings and stated criterion reuses it, any change runs the claim again), and its
  controls' in ``claimNN/positive/`` and ``claimNN/negative/`` (the same criterion on a model for which the
  claim must hold, and on one for which it must fail);
* ``runs/``: the trained networks' run folders (one per configuration and seed; a finished run is reused, a
  killed one resumes from its last checkpoint), trained in local processes or, with ``--executor submitit``
  (the default at ``--scale paper``), as one job array on a cluster: the command submits the missing runs and
  returns; run it again to collect them, and it writes the report once every run is finished;
* ``claims.csv``: one row per claim, columns :data:`COLUMNS`;
* ``report.md``: the table, then per claim its verdict and why, its criterion, every condition with its number,
  interval and pass/fail/inconclusive, its controls' verdicts, the regime of each trained run, its figure and
  the time it took;
* ``record.json``: scale, seeds, settings of every claim, and package versions.

The verdict words, the one kind of interval and how conditions combine: :mod:`lab.claims.verdicts`.

Seeds: 1 at ``quick``, 3 at ``cpu`` and ``paper`` unless ``--seeds`` says otherwise.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from memgen.run_files import atomic_write_json, atomic_write_text, write_record

from .base import fmt, fmt_interval

COLUMNS = ("claim", "paper", "statement", "paper_value", "our_value", "verdict", "reason", "positive_control",
           "negative_control", "scale", "seeds", "figure", "seconds")


def _claim_numbers(only: str | None, known) -> list:
    if not only:
        return sorted(known)
    try:
        numbers = sorted({int(x) for x in str(only).split(",") if x.strip()})
    except ValueError:
        raise ValueError(f"only: expected comma-separated claim numbers, got {only!r}") from None
    unknown = [n for n in numbers if n not in known]
    if unknown or not numbers:
        raise ValueError(f"only: unknown claim(s) {unknown or only!r}; expected numbers in {sorted(known)}")
    return numbers


NO_CONTROL = {"verdict": None, "reason": "no control declared", "conditions": [], "seconds": 0.0,
              "description": "none"}


def _outcome(run, settings: dict, folder: Path, scale: str, seeds: list, progress: bool, stated: str) -> dict:
    """The outcome of ``run`` (a claim's or a control's) as a dict, from ``folder/outcome.json`` when it was finished
    at this scale, seeds and settings under the same stated criterion (``stated``); a run that raises is
    ``not run`` with the reason."""
    from .base import Outcome

    done = folder / "outcome.json"
    if done.is_file():
        row = json.loads(done.read_text())
        if (row.get("scale") == scale and row.get("seeds") == len(seeds) and row.get("error") is None
                and row.get("settings") == json.loads(json.dumps(settings))
                and row.get("criterion") == stated):
            return row
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        outcome = run(settings, folder, seeds, progress)
        error = None
    except Exception as e:                      # a failed run is reported as not run, with the reason
        outcome, error = Outcome([], ""), f"{type(e).__name__}: {e}"
    word, reason = outcome.verdict
    if error:
        reason = f"it raised {error}"
    row = {"our_value": outcome.our_value, "verdict": word, "reason": reason,
           "conditions": [c.row() for c in outcome.conditions], "regimes": outcome.regimes,
           "figure": f"{folder.name}/{outcome.figure}" if outcome.figure else "", "scale": scale,
           "seeds": len(seeds), "seconds": round(time.perf_counter() - t0, 1), "error": error, "settings": settings,
           "criterion": stated, "numbers": outcome.numbers}
    atomic_write_json(done, row)
    return row


def run_claim(claim, folder: Path, scale: str, seeds: list, progress: bool, roots: dict | None = None) -> dict:
    """The claim's report row: its outcome and its two controls' (each reused from its ``outcome.json`` when
    finished at this scale, seeds and settings under the same criterion text), the verdict adjusted by the controls
    (:func:`~lab.claims.verdicts.controlled`). ``roots``: the user's local data copies (:meth:`Claim.settings`)."""
    from .verdicts import controlled

    settings, stated = claim.settings(scale, roots), criterion(claim)
    own = _outcome(claim.run, settings, folder, scale, seeds, progress, stated)
    controls = {kind: _outcome(getattr(claim, kind).run, settings, folder / kind, scale, seeds, progress, stated)
                | {"description": getattr(claim, kind).description} if getattr(claim, kind) else NO_CONTROL
                for kind in ("positive", "negative")}
    word, reason = controlled(own["verdict"], own["reason"], controls["negative"]["verdict"],
                              controls["positive"]["verdict"])
    return own | {"claim": claim.number, "paper": claim.paper, "statement": claim.statement,
                  "paper_value": claim.paper_value, "verdict": word, "reason": reason,
                  "claim_verdict": own["verdict"], "positive_control": controls["positive"]["verdict"],
                  "negative_control": controls["negative"]["verdict"], "controls": controls,
                  "seconds": round(own["seconds"] + sum(c["seconds"] for c in controls.values()), 1)}


def criterion(claim) -> str:
    """The paragraph ``Claim N. Criterion ...`` of the docstring of the claim's module (its stated criterion)."""
    import importlib

    doc = importlib.import_module(claim.run.__module__).__doc__ or ""
    for para in doc.split("\n\n"):
        if para.strip().startswith(f"Claim {claim.number}. Criterion"):
            return " ".join(para.split())
    return f"(not stated in {claim.run.__module__})"


INTERVAL = ("Intervals: 95% percentile intervals of a two-level bootstrap that resamples the seeds, then the units "
            "(points, samples or runs) within each drawn seed; a condition passes when its interval lies inside its "
            "target, fails when it lies outside, and is inconclusive when it straddles a boundary or is wider than "
            "the question allows. A claim whose negative control is also judged reproduced is not testable here.")


def _conditions_table(conditions: list) -> list:
    lines = ["| condition | what must hold | ours | interval | target | result |", "|---|---|---|---|---|---|"]
    for c in conditions:
        kind = "" if c["main"] else " (secondary)"
        lines.append(f"| {c['name']}{kind} | {c['text']} | {fmt(c['value'])} | {fmt_interval(c['lo'], c['hi'])} |"
                     f" {c['target']} | {c['status']} |")
    return lines


REGIME_KEYS = ("data", "setting", "n", "width", "batch", "seed", "step", "steps")
"""The regime table's leading columns (what names the run), in this order; its measurements follow by name, then
the regime: one order whether the rows are fresh or read back from ``outcome.json``."""


def _regimes_table(regimes: list) -> list:
    if not regimes:
        return []
    keys = [k for k in REGIME_KEYS if k in regimes[0]]
    keys += sorted(k for k in regimes[0] if k not in keys and k != "regime")
    lines = ["| " + " | ".join(keys) + " | regime |", "|" + "---|" * (len(keys) + 1)]
    for r in regimes:
        lines.append("| " + " | ".join(fmt(r[k]) if isinstance(r[k], float) else str(r[k]) for k in keys)
                     + f" | {r['regime']} |")
    return lines


def markdown(rows: list, scale: str) -> str:
    """The report: a summary table, then per claim its verdict and why, criterion, conditions, controls,
    regimes, figure and time."""
    lines = [f"# memgen report (scale `{scale}`)", "", INTERVAL, "",
             "| claim | paper | verdict | ours | positive control | negative control | paper | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | {r['paper']} | **{r['verdict']}** | {r['our_value']} | {r['positive_control']} |"
                     f" {r['negative_control']} | {r['paper_value']} | {r['seconds']} |")
    for r in rows:
        lines += ["", f"## Claim {r['claim']} ({r['paper']}): {r['statement']}", "",
                  f"Verdict: **{r['verdict']}**, because {r['reason']}. Scale `{r['scale']}`, {r['seeds']} seed(s), "
                  f"{r['seconds']} s with its controls.", "", r["criterion"], "",
                  f"Ours: {r['our_value']}. Paper: {r['paper_value']}.", ""]
        lines += _conditions_table(r["conditions"])
        for kind in ("positive", "negative"):
            c = r["controls"][kind]
            lines += ["", f"**{kind.capitalize()} control** ({c['description']}): **{c['verdict']}**, because "
                      f"{c['reason']}.", ""]
            lines += _conditions_table(c["conditions"])
        if r["regimes"]:
            lines += ["", "Regime of each trained run (replicate fraction of its samples, ratio criterion 1/3; "
                      "generalizing: interval below 0.5, memorizing: above):", ""] + _regimes_table(r["regimes"])
        if r.get("error"):
            lines += ["", f"Not run: `{r['error']}`"]
        if r["figure"]:
            lines += ["", f"![claim {r['claim']}]({r['figure']})"]
    return "\n".join(lines) + "\n"


SHARED_RUNS = ((3, 4), (11, 12))
"""Claims that read the same trained runs: they run one after the other in one process, never side by side."""


def _groups(numbers: list) -> list:
    """``numbers`` in groups that may run side by side (:data:`SHARED_RUNS` kept together), largest first."""
    groups, seen = [], set()
    for n in numbers:
        if n in seen:
            continue
        group = next(([m for m in g if m in numbers] for g in SHARED_RUNS if n in g), [n])
        seen.update(group)
        groups.append(group)
    return sorted(groups, key=len, reverse=True)


def _run_group(numbers: list, out: Path, scale: str, seeds: list, progress: bool, threads: int,
               roots: dict | None = None) -> list:
    """The report rows of the claims ``numbers``, in this process, with ``threads`` torch threads (0: as set)."""
    from memgen.threads import cpu_threads

    from .registry import CLAIMS

    with cpu_threads(threads):
        return [run_claim(CLAIMS[n], out / f"claim{n:02d}", scale, seeds, progress, roots) for n in numbers]


class RunsPending(RuntimeError):
    """Trained runs the claims need are not finished yet (jobs still queued or running on a cluster)."""

    def __init__(self, pending: list, total: int, jobs_dir: Path):
        self.pending = pending
        super().__init__(f"{len(pending)} of {total} trained runs are not finished; their jobs are in {jobs_dir}: "
                         "run the same command again when they finish (finished runs are collected, missing "
                         "ones submitted)")


LOCAL_COPIES = ("cifar10",)
"""Data sets read from the user's own copy (their loader's ``root``); nothing is downloaded."""


def local_copies(claims: list, scale: str, cifar10=None) -> dict:
    """``{data set name: folder}`` of the user's copies (``cifar10``: a folder), checked: each must exist, and
    every claim whose settings at ``scale`` use a data set of :data:`LOCAL_COPIES` must have its copy given."""
    roots = {}
    if cifar10 is not None:
        root = Path(cifar10).expanduser()
        if not root.exists():
            raise ValueError(f"cifar10: no folder or archive {root} (memgen report --cifar10 ROOT)")
        roots["cifar10"] = str(root.resolve())
    lacking = sorted({(d["name"], c.number) for c in claims for d in c.settings(scale, roots).get("data_sets", ())
                      if d["name"] in LOCAL_COPIES and "root" not in d.get("params", {})})
    if lacking:
        name = lacking[0][0]
        numbers = [str(n) for m, n in lacking if m == name]
        which = f"claims {', '.join(numbers)} train" if len(numbers) > 1 else f"claim {numbers[0]} trains"
        raise ValueError(f"{name}: {which} on {name} at scale {scale!r}; give the folder of your "
                         f"local copy (memgen report --{name} ROOT; nothing is downloaded), or leave them out "
                         "with --only")
    return roots


def planned(claims: list, runs_dir: Path, scale: str, seeds: list, roots: dict | None = None) -> dict:
    """``{run folder: (values, seed)}`` of every run that ``claims`` plan at ``scale``
    (:meth:`~lab.claims.base.Claim.planned_runs`), each once: claims that share a run share its folder."""
    from .networks import run_folder

    return {run_folder(runs_dir, ov, sd): (ov, sd) for c in claims for ov, sd in c.planned_runs(scale, seeds, roots)}


def train_planned(claims: list, out: Path, scale: str, seeds: list, *, executor: str = "process", jobs: int = 1,
                  cluster: str | None = None, slurm: dict | None = None, wait: bool = True, processes: int = 1,
                  progress: bool = False, roots: dict | None = None) -> None:
    """Train every run that ``claims`` plan (:func:`planned`) before the claims
    read them, by :func:`lab.executors.run_tasks`: ``'process'``, ``jobs`` processes of one thread each;
    ``'submitit'``, one job array of the missing runs (jobs in ``out/runs/submitit``; ``wait``: for it to
    finish); ``processes``: data-parallel processes per run (one per GPU of a node). Raises :class:`RunsPending`
    when some are not finished."""
    from lab.executors import run_tasks

    from lab.run_metrics import METRICS

    from .networks import run_config

    runs_dir = out / "runs"
    jobs_dir = runs_dir / "submitit"
    tasks = [(run_config(ov, sd), folder) for folder, (ov, sd) in planned(claims, runs_dir, scale, seeds, roots).items()]
    pending = run_tasks(tasks, metrics=METRICS, executor=executor, workers=jobs, jobs_dir=jobs_dir, cluster=cluster,
                        slurm=slurm, wait=wait, processes=processes, progress=progress)
    if pending:
        raise RunsPending(pending, len(tasks), jobs_dir)


def run_report(out, *, scale: str = "quick", only: str | None = None, seeds: int | None = None,
               progress: bool = True, jobs: int = 1, executor: str | None = None, cluster: str | None = None,
               slurm: dict | None = None, wait: bool = False, processes: int = 1, cifar10=None) -> list:
    """Run the selected claims (module doc) and write the report; returns the rows of ``claims.csv``.

    ``executor``: where the trained runs train (default ``'submitit'`` at paper scale, else ``'process'``).
    ``'process'`` with ``jobs > 1`` first trains every run the claims plan, then runs the claims, each in that
    many processes of one thread each (claims that share trained runs in the same process,
    :data:`SHARED_RUNS`); with ``jobs = 1`` everything runs here, with torch's thread setting. ``'submitit'``
    submits the missing runs as one job array (``cluster``, ``slurm``: :func:`lab.executors.run_tasks`) and,
    unless ``wait``, raises :class:`RunsPending` at once when runs are not finished: calling again later
    collects them, submits what is missing, and runs the claims once every run is there. ``processes > 1``
    trains each run data-parallel in that many processes (a multi-GPU node: one per GPU, with
    ``slurm={'gpus_per_node': processes}``), where one process per run is too slow. ``cifar10``: the folder of
    the user's CIFAR-10 copy (:func:`memgen.data.cifar10`'s ``root``), needed by claims 11 and 12 at paper
    scale and checked before anything trains; it is part of those runs' configs (and so of their folders' names)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from memgen.checks import integer
    from memgen.progress import progress_bar

    from compare.records import Records

    from .registry import CLAIMS
    from .base import SCALES

    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")
    n_seeds = (1 if scale == "quick" else 3) if seeds is None else int(seeds)
    if n_seeds < 1:
        raise ValueError(f"seeds: expected a positive number of seeds, got {seeds!r}")
    jobs, processes = integer(jobs, "jobs", 1), integer(processes, "processes", 1)
    executor = ("submitit" if scale == "paper" else "process") if executor is None else executor
    if executor not in ("process", "submitit"):
        raise ValueError(f"executor: expected 'process' or 'submitit', got {executor!r}")
    out = Path(out)
    numbers = _claim_numbers(only, CLAIMS)
    roots = local_copies([CLAIMS[n] for n in numbers], scale, cifar10)
    seed_list = list(range(n_seeds))
    groups, done = _groups(numbers), {}
    if executor == "submitit" or jobs > 1 or processes > 1:
        train_planned([CLAIMS[n] for n in numbers], out, scale, seed_list, executor=executor, jobs=jobs,
                      cluster=cluster, slurm=slurm, wait=wait, processes=processes, progress=progress, roots=roots)
    if jobs == 1:
        bar = progress_bar(groups, enabled=progress, desc="claims", unit="group")
        for group in bar:
            bar.set_postfix_str("claim " + ",".join(map(str, group)))
            done.update({r["claim"]: r for r in _run_group(group, out, scale, seed_list, progress, 0, roots)})
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_group, g, out, scale, seed_list, False, 1, roots) for g in groups]
            for f in progress_bar(as_completed(futures), enabled=progress, desc="claims", unit="group",
                                  total=len(futures)):
                done.update({r["claim"]: r for r in f.result()})
    rows = [done[n] for n in numbers]
    Records({k: r[k] for k in COLUMNS} for r in rows).to_csv(out / "claims.csv")
    atomic_write_text(out / "report.md", markdown(rows, scale))
    write_record(out, command="memgen report", scale=scale, seeds=n_seeds, jobs=jobs, executor=executor,
                 claims=numbers,
                 settings={r["claim"]: r["settings"] for r in rows},
                 seconds={r["claim"]: r["seconds"] for r in rows})
    return rows
