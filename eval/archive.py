"""The paper's results archive: from a finished sweep, the files `eval.report` reads, and nothing
else, as run folders under `paper/results/`, so the paper builds with the sweep's figures without
rerunning it; and the check that a rerun of some of its runs gives the archived numbers.

Kept per run: `.hydra/config.yaml`, `resolved.yaml`, `eval/metrics.json`, `eval/walk_forward.json`,
the test universes' walks (`eval/universes.parquet`) and the post-cost returns of its learned
policy. The primary row (ablation `full`) keeps every
policy's post-cost returns, weights and contributions (significance, cost stress and domain
tables) and the decision log's allocations and risk appetite (the allocation figure and the
regime probes); its first seed also keeps the detected regimes and its final policy's weights alone
(`<phase>/checkpoints/best.ckpt` with the system or agent: the crash-path table). Optimizers,
replays, TensorBoard events and pre-cost frames stay behind. The sweep's records (its launcher,
every job's status) are kept, and so are the trial records of the hyperparameter searches named
with `--searches` (in `searches/`): the report names the missing runs and counts the trials.

    python -m eval.archive runs/paper/sweep_<stamp> paper/results [--searches runs/search/hpo_<stamp>]
    python -m eval.archive --compare paper/results runs/paper-check/<stamp> --tolerance 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from eval.runs import Run, find_runs, group_runs
from learners.run.folder import RunFolder
from learners.run.sweep import JOB_FILE, SWEEP_FILE, TRIAL_FILE, search_trials
from storage.atomic import atomic_path, write_text

PRIMARY = "full"
PRIMARY_FRAMES = ("returns", "weights", "contributions")
DECISION_KEYS = ("timestamp", "allocation", "risk_appetite")     # what the allocation figure draws


def _copy(source: Path, target: Path) -> None:
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def archive_run(run: Run, out: RunFolder, primary: bool, first: bool) -> None:
    """The files of `run` the report reads (see the module docstring) into `out`."""
    source = run.folder
    for name in (".hydra/config.yaml", "resolved.yaml", "eval/metrics.json", "eval/walk_forward.json",
                 "eval/universes.parquet"):
        _copy(source.path / name, out.path / name)
    for policy in run.policies if primary else [run.learned_policy]:
        for kind in PRIMARY_FRAMES if primary else ("returns",):
            _copy(source.eval_dir / f"{policy}_{kind}.parquet", out.eval_dir / f"{policy}_{kind}.parquet")
    decisions = source.decisions() if primary else None
    if decisions is not None:
        kept = [{key: record[key] for key in DECISION_KEYS} for record in decisions]
        write_text(out.decisions_file, "".join(json.dumps(record) + "\n" for record in kept))
    if primary and first:
        _copy(source.eval_dir / "regimes.parquet", out.eval_dir / "regimes.parquet")
        try:
            checkpoint = source.final_checkpoint()
        except FileNotFoundError as missing:
            print(f"no policy archived for the crash-path table: {missing}")
            return
        phase = checkpoint.parents[1].name
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        policy = {key: state[key] for key in ("system", "agent") if key in state}
        with atomic_path(out.checkpoints(phase).path("best")) as temporary:
            torch.save(policy, temporary)
        out.checkpoints(phase).folder.joinpath("done").touch()


def archive_records(root: Path, out: Path, searches: list[Path]) -> None:
    """The sweep's records (`sweep.jsonl`, every job's `job.json`: the report names the runs that
    did not finish from them) and each hyperparameter search's (its records, `optimization_results.yaml`
    and every trial's `search.json`: the report counts its trials) into `out/searches/<name>/`."""
    for record in [*root.rglob(SWEEP_FILE), *root.rglob(JOB_FILE)]:
        _copy(record, out / record.relative_to(root))
    for search in searches:
        if not search_trials(search):
            raise FileNotFoundError(f"{search}: no trial of a hyperparameter search ({TRIAL_FILE}) under it")
        for record in [*search.rglob(SWEEP_FILE), *search.rglob("optimization_results.yaml"),
                       *search.rglob(TRIAL_FILE), *search.rglob(JOB_FILE)]:
            _copy(record, out / "searches" / search.name / record.relative_to(search))


def archive(root: Path, out: Path, searches: list[Path] = ()) -> list[Path]:
    """Archive every finished run under `root` into `out/<run folder name>/` (replacing `out`),
    with the sweep's and the `searches`' records (`archive_records`)."""
    groups = group_runs(find_runs(root))
    if out.exists():
        shutil.rmtree(out)
    written = []
    for group in groups:
        for k, run in enumerate(group.runs):
            target = RunFolder(out / run.path.name)
            archive_run(run, target, group.ablation == PRIMARY, k == 0)
            written.append(target.path)
    archive_records(root, out, list(searches))
    return written


def compare(archived: Path, rerun: Path, tolerance: float) -> list[str]:
    """Each rerun's post- and pre-cost policy figures, and its test-universe walks, against the
    archived run of the same ablation and seed: the differences beyond `tolerance` (absolute),
    named. A policy one side lacks is a difference; a metric only the newer code records (the
    archive predates it) is not compared."""
    reference = {(run.ablation, run.seed): run for run in find_runs(archived)}
    problems = []
    for run in find_runs(rerun):
        key = (run.ablation, run.seed)
        if key not in reference:
            problems.append(f"{run.path}: no archived run of ablation {key[0]}, seed {key[1]}")
            continue
        where = f"ablation {key[0]}, seed {key[1]}"
        for section in ("policies", "pre_cost"):
            mine, theirs = run.summaries(section), reference[key].summaries(section)
            for policy in sorted(set(mine) ^ set(theirs)):
                problems.append(f"{where}, {section}: policy {policy} in only one of rerun and archive")
            for policy in sorted(set(mine) & set(theirs)):
                for metric in sorted(set(mine[policy]) & set(theirs[policy])):
                    if _differs(mine[policy][metric], theirs[policy][metric], tolerance):
                        problems.append(f"{where}, {section} {policy} {metric}: rerun {mine[policy][metric]} "
                                        f"vs archived {theirs[policy][metric]}")
        problems += _compare_universes(run, reference[key], where, tolerance)
    return problems


def _differs(value: float | None, other: float | None, tolerance: float) -> bool:
    if value is None or other is None:
        return value != other
    return abs(value - other) > tolerance


def _compare_universes(run: Run, reference: Run, where: str, tolerance: float) -> list[str]:
    """The universe walks' Sharpe ratios, when both runs have them."""
    mine, theirs = run.folder.universes(), reference.folder.universes()
    if mine is None or theirs is None:
        return []
    joined = mine.merge(theirs, on=["universe", "policy"], how="outer", suffixes=("", "_archived"))
    return [f"{where}, universe {row.universe} {row.policy} sharpe: rerun {row.sharpe} "
            f"vs archived {row.sharpe_archived}"
            for row in joined.itertuples() if _differs(_plain(row.sharpe), _plain(row.sharpe_archived), tolerance)]


def _plain(value: float) -> float | None:
    return None if value is None or value != value else float(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a finished sweep (or, with --compare, the archive)")
    parser.add_argument("target", type=Path, help="the archive to write (or, with --compare, the rerun)")
    parser.add_argument("--compare", action="store_true", help="compare a rerun with the archive instead")
    parser.add_argument("--tolerance", type=float, default=0.0, help="absolute, for --compare")
    parser.add_argument("--searches", type=Path, nargs="*", default=[],
                        help="hyperparameter-search folders whose trials the report counts in the deflated Sharpe")
    args = parser.parse_args(argv)
    if args.compare:
        problems = compare(args.source, args.target, args.tolerance)
        print(json.dumps({"differences": len(problems)}))
        print("\n".join(problems))
        sys.exit(1 if problems else 0)
    written = archive(args.source, args.target, args.searches)
    size = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"archived {len(written)} runs into {args.target} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
