"""Atomic writes: the target appears whole or keeps its old content, no temporary is left
behind, formats chosen by suffix still work, and JSON is strict."""

import json

import numpy as np
import pandas as pd
import pytest

from storage.atomic import atomic_path, json_ready, write_json, write_text


def test_the_target_is_replaced_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "deep" / "folder" / "table.parquet"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".parquet" and not target.exists()
        pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(temporary)
    assert pd.read_parquet(target)["a"].tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as temporary:
            pd.DataFrame({"a": [3.0]}).to_parquet(temporary)
            raise RuntimeError("killed mid-write")
    assert pd.read_parquet(target)["a"].tolist() == [1.0, 2.0]
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.parquet"]


def test_json_is_strict_and_numpy_ready(tmp_path):
    content = {"sharpe": np.float64(1.25), "n": np.int64(3), "ok": np.bool_(True), "psr": float("nan"),
               "weights": np.array([0.5, np.inf]), 7: (1, 2)}
    write_json(tmp_path / "m.json", content)
    assert json.loads((tmp_path / "m.json").read_text()) == {"sharpe": 1.25, "n": 3, "ok": True, "psr": None,
                                                              "weights": [0.5, None], "7": [1, 2]}
    assert json_ready(json_ready(content)) == json_ready(content)
    write_text(tmp_path / "m.json", "replaced")
    assert (tmp_path / "m.json").read_text() == "replaced"
