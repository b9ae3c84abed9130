"""What every training loop of the recipes shares: the schedule, the epoch plan and checkpoints.

The loops themselves stay in their recipes, in plain sight (encoder towers in
:mod:`embedspace.recipes.encoder_training`, tokenizer and prior in
:mod:`embedspace.recipes.generator_training`); this module holds only their scaffolding:

- :func:`warmup_cosine`: the learning-rate multiplier, a linear warm-up (Goyal et al.,
  2017, "Accurate, Large Minibatch SGD") then a cosine decay (Loshchilov & Hutter, 2017,
  "SGDR", without restarts) to a floor;
- :class:`EpochPlan`: the epochs to run, from where a resumed run stopped, cut short when
  the pace so far says the rest will not fit a wall-clock budget; the schedule spans the
  planned epochs;
- :func:`save_checkpoint`, :func:`resume_checkpoint`, :func:`read_checkpoint`: a resumable
  training state written after each epoch. It holds tensors and plain Python types only,
  so it loads with ``torch.load(weights_only=True)`` and a crafted file runs no code.
"""

from __future__ import annotations

import logging
import math
import pickle  # only for pickle.UnpicklingError, which torch.load raises for a refused file
import time
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch

from embedspace.generator.serialization import atomic_torch_save

logger = logging.getLogger(__name__)

#: Keys every training checkpoint holds, besides the state of each part (model, optimizer...).
CHECKPOINT_KEYS = frozenset({"config", "model", "optimizer", "generator", "epoch", "step", "history"})


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_fraction: float = 0.0) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (counted from 0).

    ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then a cosine from 1
    down to ``final_fraction`` at ``total_steps``, and ``final_fraction`` after that.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def capped_warmup(warmup_steps: int, total_steps: int) -> int:
    """``warmup_steps``, but at most a tenth of ``total_steps`` (short runs) and at least 1."""
    return max(1, min(warmup_steps, total_steps // 10))


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer`` to ``value``."""
    for group in optimizer.param_groups:
        group["lr"] = value


def planned_epochs(epochs: int, start_epoch: int, done: int, started: float, time_budget_s: float | None) -> int:
    """Epochs to run in all: ``epochs``, or fewer if the pace since ``started`` (a ``time.perf_counter()``)
    says they won't fit in ``time_budget_s`` seconds (``done`` epochs finished, counted from 0)."""
    if time_budget_s is None or done <= start_epoch:
        return epochs
    pace = (time.perf_counter() - started) / (done - start_epoch)  # seconds per epoch
    return max(done, min(epochs, start_epoch + int(time_budget_s / pace)))


class EpochPlan:
    """The epochs a training loop runs and the steps its learning-rate schedule spans.

    Iterating gives the epoch numbers from ``start_epoch`` (where a resumed run stopped) up
    to ``epochs``. With ``time_budget_s`` (seconds for this call), after each epoch the plan
    is cut to the epochs that fit at the pace so far and the iteration stops there (logged).
    ``total_steps`` is the planned epochs times ``steps_per_epoch``, so a schedule built on
    it ends with the plan.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, start_epoch: int = 0, time_budget_s: float | None = None,
                 name: str = "training"):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.start_epoch = start_epoch
        self.time_budget_s = time_budget_s
        self.name = name
        self.planned = epochs

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole planned run (resumed epochs included)."""
        return self.planned * self.steps_per_epoch

    def __iter__(self) -> Iterator[int]:
        started = time.perf_counter()
        for epoch in range(self.start_epoch, self.epochs):
            self.planned = planned_epochs(self.epochs, self.start_epoch, epoch, started, self.time_budget_s)
            if epoch >= self.planned:
                logger.info("%s: stopping after %d epochs to keep within %.0f s", self.name, epoch, self.time_budget_s)
                return
            yield epoch


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint read with ``weights_only=True``: tensors and plain types only, so a crafted file runs no code.

    Raises:
        ValueError: the file is not a checkpoint written by :func:`save_checkpoint` (naming it).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{path} is not a training checkpoint this version can read safely ({first_line}); "
            "delete it and train without --resume"
        ) from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
        raise ValueError(f"{path} is not a training checkpoint (it lacks {', '.join(sorted(CHECKPOINT_KEYS))}); delete it and train without --resume")
    counters = (state["epoch"], state["step"])
    if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in counters) or not isinstance(state["history"], list):
        raise ValueError(f"{path} is a damaged training checkpoint (epoch, step or history of the wrong type); delete it and train without --resume")
    return state


def resume_checkpoint(
    path: Path | None, config: dict[str, Any], resume: bool, generator: torch.Generator, **parts: _Stateful | None
) -> tuple[int, int, list[dict[str, float]]]:
    """Restore ``parts`` (model, optimizer...) and the random ``generator`` from the checkpoint at ``path``.

    Only when ``resume`` is set and the file exists; parts given as None are skipped.
    Returns ``(start_epoch, step, history)``: ``(0, 0, [])`` when nothing was restored.

    Raises:
        ValueError: the checkpoint is unreadable, or was made with another ``config``.
    """
    if path is None or not (resume and path.is_file()):
        if resume:
            logger.info("no checkpoint at %s; training from scratch", path)
        return 0, 0, []
    state = read_checkpoint(path)
    if state["config"] != config:
        raise ValueError(
            f"the checkpoint at {path} was made with config {state['config']}, not {config}; "
            "resume with the same config or use another checkpoint_dir."
        )
    for name, part in parts.items():
        if part is not None:
            part.load_state_dict(state[name])
    generator.set_state(state["generator"])
    logger.info("resuming from %s after epoch %d", path, state["epoch"])
    return state["epoch"], state["step"], state["history"]


def save_checkpoint(
    path: Path | None, config: dict[str, Any], generator: torch.Generator, epoch: int, step: int,
    history: list[dict[str, float]], **parts: _Stateful | None,
) -> None:
    """Write the training state after ``epoch`` epochs (1-based count) to ``path`` atomically; nothing when ``path`` is None.

    ``parts`` are saved by name (None stays None), beside ``config``, the random
    ``generator``'s state, the epoch and step counters and the per-epoch ``history``.
    """
    if path is None:
        return
    atomic_torch_save({
        "config": config, **{name: None if part is None else part.state_dict() for name, part in parts.items()},
        "generator": generator.get_state(), "epoch": epoch, "step": step, "history": history,
    }, path)
