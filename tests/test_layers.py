"""Imports point one way (DESIGN.md's layering rule), lazy imports inside functions included: a
module imports from its own package and the layers below it, never from a layer above or from
another package of its own layer."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bottom up; packages on one line are independent of each other
LAYERS: tuple[tuple[str, ...], ...] = (
    ("storage",),
    ("envs", "buffers"),
    ("risk", "features"),
    ("learners",),                # the algorithms: ppo, sac, cql, networks, fabric, gym_tasks, bench
    ("hierarchy",),
    ("learners.run",),            # run plumbing: config, settings, run folder, checkpoints, workspace, restore
    ("eval", "service"),          # service: the decision service (export, serve); reads runs like eval
    ("learners.experiment",),     # phases, loop, curriculum, evaluation, walk-forward
    ("learners.train",),
)
PACKAGES = {name.split(".")[0] for layer in LAYERS for name in layer}


def component(module: str) -> tuple[int, str]:
    """(layer, the LAYERS entry) a module belongs to: its longest matching prefix."""
    matches = [(len(name), k, name) for k, layer in enumerate(LAYERS) for name in layer
               if module == name or module.startswith(name + ".")]
    _, layer, name = max(matches)
    return layer, name


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path) -> bool:
    path = root / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").exists()


def imported(node: ast.AST, root: Path) -> list[str]:
    """The project modules an import statement reaches (`from pkg import module` counts as the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [f"{node.module}.{alias.name}" if is_module(f"{node.module}.{alias.name}", root) else node.module
                 for alias in node.names]
    else:
        return []
    return list(dict.fromkeys(name for name in names if name.split(".")[0] in PACKAGES))


def violations(root: Path) -> list[str]:
    """Every import under `root` that points up a layer or across to another package of its layer."""
    found = []
    for top in sorted(PACKAGES):
        for path in sorted((root / top).rglob("*.py")):
            importer = module_name(path, root)
            layer, name = component(importer)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                for target in imported(node, root):
                    target_layer, target_name = component(target)
                    if target_layer > layer or (target_layer == layer and target_name != name):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {importer} ({name}) imports "
                                     f"{target} ({target_name})")
    return found


def test_imports_point_one_way():
    assert violations(ROOT) == []


def _plant(root: Path, files: dict[str, str]) -> None:
    for top in PACKAGES:
        (root / top).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize("planted, culprit", [
    ("envs/kernel.py", "def step():\n    from eval.report import main\n"),           # a lazy upward import
    ("risk/overlay.py", "import features.pipeline\n"),                                 # across a layer
    ("learners/run/restore.py", "from learners.experiment import phases\n"),           # up inside learners
    ("learners/ppo.py", "from hierarchy.system import HierarchicalSystem\n"),          # an algorithm to the hierarchy
], ids=["lazy", "sibling", "plumbing-to-experiment", "algorithm-to-hierarchy"])
def test_a_planted_upward_import_is_named(tmp_path, planted, culprit):
    _plant(tmp_path, {"eval/report.py": "", "features/pipeline.py": "", "learners/experiment/phases.py": "",
                      "hierarchy/system.py": "", "eval/backtest.py": "from learners.run import restore\n",
                      "learners/run/restore.py": "", planted: culprit})
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{planted}:")
