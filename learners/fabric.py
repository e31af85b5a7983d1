"""Lightning Fabric for every learner: device, precision, seeding, data-parallel gradients,
checkpoints (state dicts only, written atomically, loadable with `torch.load(...,
weights_only=True)`), TensorBoard logging, and the check that no loss is NaN.
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.optim import Optimizer

from storage.atomic import atomic_path


@dataclass
class FabricConfig:
    """How and where a learner runs. `strategy="ddp"` with `devices=2` trains data-parallel
    (on CPU through gloo): each process steps its own envs and gradients are averaged. Across
    machines, `num_nodes` x `devices` processes are started by the cluster, one command per
    process (`srun` under SLURM, `torchrun --nnodes ... --node_rank ...` elsewhere), and Fabric
    reads each one's rank and the rendezvous from the environment they set (README, "Running on
    a cluster")."""

    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"   # or "bf16-mixed": forward passes run under fabric.autocast()
    seed: int = 0
    torch_threads: int = 0       # torch intra-op threads per process; 0 keeps torch's default
    log_dir: str = "runs/learners"   # TensorBoard root; "" logs nothing
    run_name: str = "run"


def make_fabric(config: FabricConfig) -> Fabric:
    """Launch Fabric (spawning DDP processes if asked) and seed this process with seed + rank.

    Every process draws different env and sampling noise; `broadcast_parameters` then gives all
    of them rank 0's initial weights. `torch_threads` also goes to OMP_NUM_THREADS: where that is
    unset, Lightning's launch sets torch's threads to cores / processes in every process, over ours
    (a torchrun-started node of one process then trained on every core, and its numbers differed).
    """
    if config.torch_threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(config.torch_threads)
        torch.set_num_threads(config.torch_threads)
    loggers = [TensorBoardLogger(root_dir=config.log_dir, name=config.run_name)] if config.log_dir else []
    fabric = Fabric(accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
                    strategy=config.strategy, precision=config.precision, loggers=loggers)
    fabric.launch()
    fabric.seed_everything(config.seed + fabric.global_rank, verbose=False)
    return fabric


def broadcast_parameters(fabric: Fabric, module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (a no-op on one process)."""
    if fabric.world_size == 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        tensor.data.copy_(fabric.broadcast(tensor.data, src=0))


def average_gradients(fabric: Fabric, params: list[nn.Parameter]) -> None:
    """Data parallelism: average the gradients over processes in one all-reduce (what DDP does,
    done explicitly because SAC's actor and critics each take several forward passes per step)."""
    if fabric.world_size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = fabric.all_reduce(torch.cat([g.reshape(-1) for g in grads]), reduce_op="mean")
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()


def adam(params: Iterable[nn.Parameter | Tensor], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with its fused kernel (one call for all parameters instead of a Python loop over
    them: the optimizer step is a large share of a small MLP's update on CPU)."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


def optimize(fabric: Fabric, loss: Tensor, optimizer: Optimizer, max_grad_norm: float | None = None) -> float:
    """One gradient step on `loss` over the optimizer's parameters: backward, average over
    processes, clip the global gradient norm (if given), step. Returns the norm before clipping
    (nan when not clipping)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    average_gradients(fabric, params)
    norm = math.nan if max_grad_norm is None else float(clip_grad_norm(params, max_grad_norm))
    optimizer.step()
    return norm


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> Tensor:
    """Scale the gradients so that their global L2 norm is at most `max_norm` (as
    `torch.nn.utils.clip_grad_norm_`, in one fused norm and one fused scale without its
    per-call grouping by device and dtype); returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm


def check_finite(losses: dict[str, Tensor], algo: str, update: int) -> None:
    """Raise FloatingPointError naming the first non-finite loss and the update it came from
    (one synchronising check for all losses; the loop that names the culprit runs only on failure)."""
    if torch.isfinite(torch.stack([value.detach().float().sum() for value in losses.values()])).all():
        return
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"{algo} update {update}: {name} is {value.detach().cpu().tolist()}")


def polyak_update(target: Iterable[Tensor], online: Iterable[Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target), list(online), tau)


def write_state(path: str | Path, state: dict[str, Any]) -> None:
    """`torch.save(state)` to `path` atomically; a full disk is an OSError that says so and names
    the file (torch's own error does neither), the previous file left intact."""
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            torch.save(state, temporary)
    except (OSError, RuntimeError) as error:
        if _disk_full(error, path.parent):
            raise OSError(errno.ENOSPC, f"{path}: disk full, the checkpoint was not written (the previous one is "
                                        f"kept); free space on {path.parent} and resume") from error
        raise


def _disk_full(error: OSError | RuntimeError, folder: Path) -> bool:
    """Whether a failed write ran out of space: ENOSPC, or torch's bare 'file write failed' on a
    disk with (almost) nothing left."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return "write" in str(error) and shutil.disk_usage(folder).free < 1 << 20


def read_state(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The state dict at `path` (weights only: nothing is unpickled); a missing file is a
    FileNotFoundError, a truncated or foreign one a ValueError that names it as damaged."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (EOFError, pickle.UnpicklingError, RuntimeError) as error:
        raise ValueError(f"{path}: the checkpoint is damaged (truncated or not a checkpoint: "
                         f"{type(error).__name__}); delete or replace it") from None


def save_checkpoint(fabric: Fabric, path: str | Path, objects: dict[str, Any]) -> None:
    """Modules, optimizers and learners as their state dicts, plain values as they are, written
    by rank 0 atomically (`write_state`: a process killed mid-write leaves the previous file
    intact); every process then waits at a barrier."""
    if fabric.global_rank == 0:
        write_state(path, {name: value.state_dict() if hasattr(value, "state_dict") else value
                           for name, value in objects.items()})
    fabric.barrier()


def load_checkpoint(path: str | Path, objects: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Restore each of `objects` that has `load_state_dict` in place from the checkpoint at `path`
    (`read_state`); returns the whole checkpoint, plain values included."""
    state = read_state(path, device)
    missing = sorted(name for name in objects if name not in state)
    if missing:
        raise KeyError(f"checkpoint {path} lacks {missing}; it holds {sorted(state)}")
    for name, value in objects.items():
        if hasattr(value, "load_state_dict"):
            value.load_state_dict(state[name])
    return state
