"""What training needs to scale from one CPU to several GPUs: devices, mixed precision, torch.compile and
DistributedDataParallel (DDP) — kept apart from the model, which only ever offers ``log_prob``.

Mixed precision. Under ``torch.autocast`` matrix products and convolutions run in bfloat16 or float16 — that is
where the time goes — but a flow's log-likelihood is a sum of hundreds of log-det terms plus the prior, and a sum of
that size rounded to 8 bits of mantissa (bfloat16) is off by whole nats. So only the *networks inside* the flow
(the coupling's and the split prior's convolutions: every child module of a Flow that is not itself a Flow) run
under autocast, and their outputs are cast back to float32. Every map, every log-det and the prior stay float32.

Data parallelism. Each process gets its share of the same global batch (``shard``), DDP averages the gradients,
so one step equals a step of one process on the whole batch. ActNorm's data-dependent initialisation is all-reduced
inside ``ActNorm.initialise``; ``initialise`` here runs that pass on every rank *before* the model is wrapped in DDP
(whose constructor would otherwise silently broadcast rank 0's parameters, computed from rank 0's share only).
"""
from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

from flowlib.core import Flow

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ScalingError(ValueError):
    """A launch or device setting that cannot work (a world size that does not divide the batch, fp16 on a CPU, ...)."""


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device | None = None) -> torch.device | None:
    """Join the process group torchrun describes (env RANK, WORLD_SIZE, MASTER_ADDR, ...): NCCL on CUDA, gloo
    otherwise. Returns this process's device (cuda:LOCAL_RANK when CUDA is used)."""
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
    if device is not None and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def check_batch_split(batch_size: int, world_size: int) -> int:
    """The per-process batch size; a ScalingError when the world size does not divide the global batch."""
    if batch_size % world_size:
        raise ScalingError(
            f"the global batch of {batch_size} images cannot be split evenly over {world_size} processes "
            f"({batch_size} % {world_size} = {batch_size % world_size}). Launch a number of processes that divides "
            f"{batch_size} (torchrun --nproc-per-node N), or use a configuration whose batch size is a multiple of "
            f"{world_size}.")
    return batch_size // world_size


def shard(batch: Tensor, rank: int, world_size: int) -> Tensor:
    """This process's share of a global batch: rows rank*b .. (rank+1)*b - 1, b = B / world_size."""
    b = check_batch_split(batch.shape[0], world_size)
    return batch[rank * b: (rank + 1) * b]


def amp_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--amp``: None (off), "bf16" or "fp16"; fp16 only on CUDA (it needs a gradient
    scaler there and has no CPU kernels worth having)."""
    if amp in (None, "", "off", "none"):
        return None
    if amp not in AMP_DTYPES:
        raise ScalingError(f"--amp must be one of {sorted(AMP_DTYPES)} or off, got {amp!r}.")
    if amp == "fp16" and device.type != "cuda":
        raise ScalingError(f"--amp fp16 needs a CUDA device (this run is on {device}); use --amp bf16, which the CPU "
                           f"supports, or no --amp.")
    return AMP_DTYPES[amp]


def networks(model: nn.Module) -> list[nn.Module]:
    """The neural networks inside the flows of ``model``: children of a Flow that are not Flows (nor containers of
    Flows). These are what autocast speeds up; the maps around them are the flow's exact arithmetic."""
    found: list[nn.Module] = []
    for module in model.modules():
        if not isinstance(module, Flow):
            continue
        for child in module.children():
            if isinstance(child, Flow) or isinstance(child, (nn.ModuleList, nn.ModuleDict, nn.Sequential)) and all(
                    isinstance(c, Flow) for c in child.children()):
                continue
            if any(True for _ in child.parameters()):
                found.append(child)
    return found


def autocast_networks(model: nn.Module, dtype: torch.dtype | None, device_type: str) -> nn.Module:
    """Run every network inside ``model`` under autocast(``dtype``) with float32 outputs (``dtype`` None: undo).

    Done by giving each network an instance-level ``forward``, so the state_dict (and every checkpoint) is unchanged.
    """
    for net in networks(model):
        if "forward" in net.__dict__:
            del net.forward  # back to the class's forward
        if dtype is None:
            continue

        @functools.wraps(type(net).forward)
        def forward(*args, _net=net, **kwargs):
            with torch.autocast(device_type, dtype=dtype):
                out = type(_net).forward(_net, *args, **kwargs)
            return out.float() if isinstance(out, Tensor) and out.is_floating_point() else out

        net.forward = forward
    return model


class LogLikelihood(nn.Module):
    """``model.log_prob`` as a module's ``forward``: what DistributedDataParallel and torch.compile wrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x)


class Objective(nn.Module):
    """What ``flowlib.training.fit`` trains: ``log_prob`` goes through the wrapped module (DDP, compiled or plain)."""

    def __init__(self, wrapped: nn.Module):
        super().__init__()
        self.wrapped = wrapped

    def log_prob(self, x: Tensor) -> Tensor:
        return self.wrapped(x)


def objective(model: nn.Module, ddp: bool = False, compile: bool = False, device: torch.device | None = None) -> Objective:
    """Wrap ``model`` for training: DistributedDataParallel when ``ddp``, then torch.compile when ``compile``.

    Call ``initialise`` first: DDP's constructor copies rank 0's parameters to every process.
    """
    net: nn.Module = LogLikelihood(model)
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device is not None and device.type == "cuda" else None
        net = DistributedDataParallel(net, device_ids=ids)
    if compile:
        net = torch.compile(net)
    return Objective(net)


@torch.no_grad()
def initialise(model: nn.Module, first_batch: Tensor) -> None:
    """Run the data-dependent initialisation (ActNorm) on this process's share of the first batch, in float32 and
    before any wrapping; under torch.distributed ActNorm all-reduces its statistics, so every rank ends up with the
    same parameters. Does nothing to a model whose layers are initialised already (a resumed run)."""
    if not any(bool(getattr(m, "initialised", True)) is False for m in model.modules()):
        return
    was_training = model.training
    model.train()
    model.log_prob(first_batch)
    model.train(was_training)
