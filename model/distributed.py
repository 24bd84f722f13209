"""Multi-process training under `torchrun`: the process group, DDP wrapping and small collectives.

    torchrun --standalone --nproc-per-node 2 -m p2t_model.cli --data data/ --out runs/50m

`init_from_env` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
and initialises the default process group: nccl when training on CUDA (process i on cuda:LOCAL_RANK),
gloo on CPU. Outside torchrun it initialises nothing and says "rank 0 of 1", so a single process needs
no launcher. Every helper here is a no-op without a process group.
"""

from __future__ import annotations

import datetime
import gc
import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

# Ranks other than 0 wait in a collective while rank 0 alone trains the tokenizer, writes a checkpoint
# or runs eval_fn (generation + verification can take many minutes): the default 10 minutes is too short.
TIMEOUT_ENV = "P2T_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 60.0


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # the device this process trains on

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def active() -> bool:
    """A process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def process_device(device: str | None, local_rank: int, world_size: int) -> str:
    """The device of this process: "auto"/"cuda" become cuda:LOCAL_RANK under torchrun."""
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and world_size > 1:
        return f"cuda:{local_rank}"
    if device.startswith("cuda:") and world_size > 1:
        raise ValueError(f"--device {device} under torchrun: pass --device cuda (each process takes "
                         "cuda:LOCAL_RANK) and choose GPUs with CUDA_VISIBLE_DEVICES")
    return device


def init_from_env(device: str | None = None) -> DistContext:
    """Initialise the default process group from torchrun's environment (see the module docstring)."""
    if dist.is_available() and dist.is_initialized():  # e.g. initialised by the caller
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistContext(rank, world, local, process_device(device, local, world))
    if not launched_by_torchrun():
        return DistContext(device=process_device(device, 0, 1))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = process_device(device, local, world)
    if world == 1:
        return DistContext(0, 1, local, dev)
    timeout = datetime.timedelta(minutes=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN)))
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))
        dist.init_process_group("nccl", timeout=timeout, device_id=torch.device(dev))
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return DistContext(rank, world, local, dev)


def shutdown(failed: bool = False) -> None:
    """Leave the process group. After a normal run the ranks leave together: a rank that tears down its
    gloo sockets while a peer is still in a collective, or that destroys the group while a DDP reducer
    (kept alive by a reference cycle) still holds its work, can abort the peer at exit ("terminate called
    without an active exception", seen once in CI). So the dead DDP wrapper is freed first, and the ranks
    meet at a barrier. After an error on this rank (failed) its peers may be inside another collective,
    which a barrier would pair with: it leaves at once."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if not failed:
            barrier()
        dist.destroy_process_group()


@contextmanager
def leaving_group():
    """Run a block, then leave the process group (`shutdown`) however the block ends: together after a normal
    end, at once after an exception or sys.exit, so the group never outlives the block into interpreter teardown."""
    try:
        yield
    except BaseException:
        shutdown(failed=True)
        raise
    shutdown()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around model (which keeps its parameters: optimizers built on them stay
    valid). The model's buffers (RoPE tables) are constants, so they are not re-broadcast each forward."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """t summed over ranks, in place; t unchanged without a process group."""
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_str(s: str | None, src: int = 0) -> str:
    """Rank src's string on every rank."""
    if not active():
        return s
    box = [s]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def param_digest(model: nn.Module) -> str:
    """sha256 over the model's parameters (bytes, in order): equal digests mean bitwise-equal replicas."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def replicas_identical(model: nn.Module) -> bool:
    """Whether every rank holds bitwise the same parameters (a collective: all ranks must call it)."""
    if not active():
        return True
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, param_digest(model))
    return len(set(digests)) == 1
