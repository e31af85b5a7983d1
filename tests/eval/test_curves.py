"""Validation curves and the plateau rule that sizes the paper budget."""

import json

import pytest

from eval.curves import curves_figure, plateaus, validation_curves
from learners.run.folder import RunFolder


def _run(tmp_path, name, sharpes, phase="phase1"):
    folder = RunFolder(tmp_path / name)
    folder.phase_dir(phase).mkdir(parents=True)
    lines = [json.dumps({"rollout": k - 1, "env_steps": 1000 * k, "sharpe": s}) for k, s in enumerate(sharpes)]
    folder.validation_log(phase).write_text("\n".join(lines) + "\n")
    return folder


def test_the_plateau_is_where_the_mean_best_so_far_made_its_rise(tmp_path):
    runs = [_run(tmp_path, "a", [0.0, 0.5, 0.2, 0.9, 1.0, 0.8]), _run(tmp_path, "b", [0.0, 0.1, 0.7, 0.7, 0.6, 1.0])]
    curves = validation_curves(runs)
    assert list(curves[curves.run.str.endswith("a")].best) == [0.0, 0.5, 0.5, 0.9, 1.0, 1.0]
    table = plateaus(curves, fraction=0.8)
    # mean best so far: 0, 0.3, 0.6, 0.8, 0.85, 1.0; 80 % of the rise from 0 to 1 first at 3000 env steps
    assert table.at["phase1", "plateau_env_steps"] == 3000 and table.at["phase1", "end"] == pytest.approx(1.0)
    flat = plateaus(validation_curves([_run(tmp_path, "c", [0.5, 0.4, 0.3])]), 0.9)
    assert flat.at["phase1", "plateau_env_steps"] == 1000          # never rose: its first validation
    curves_figure(curves, table, tmp_path / "curves.pdf")
    assert (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(FileNotFoundError, match="no validation.jsonl"):
        validation_curves([RunFolder(tmp_path / "none")])
