"""What a training run did, epoch by epoch: the one record of every trainer (U-Net, default model, Mask R-CNN).

Epochs are counted from 1 everywhere (records, `best_epoch`, checkpoints, summaries), as matterport's
checkpoint names and the command line do.

Examples
--------
>>> history = TrainHistory(monitor="loss")
>>> history.add(EpochRecord(epoch=1, learning_rate=1e-3, steps=4, losses={"loss": 0.5}, seconds=2.0,
...                         seconds_per_step=0.5, monitored=0.5))
True
>>> history.best_epoch, history.loss
(1, [0.5])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

#: what `TrainHistory.monitor` may name, and whether a larger value is better
MONITORS = {"loss": False, "val_loss": False, "val_dsb": True}


@dataclass
class EpochRecord:
    """One finished epoch.

    Parameters
    ----------
    epoch
        1-based epoch number.
    learning_rate, steps, seconds, seconds_per_step
        The epoch's learning rate, its number of steps, its wall time and the time per step (the first
        step, which traces the graph, left out where the trainer can).
    losses
        Mean training losses by name; ``"loss"`` is the total that is optimised.
    monitored
        The value compared to pick the best epoch (`TrainHistory.monitor` names it); None when the
        epoch was not validated.
    val_loss, val_dsb
        Validation loss, and the DSB 2018 score of the validation images, where measured.
    layers
        The trained layers (Mask R-CNN: the layer regex of the epoch group).
    checkpoint
        The weight file written after the epoch, if any.
    member
        The ensemble member the epoch belongs to, if any.
    step_losses
        The losses of every step, kept in memory only (not in `to_dict`).
    """

    epoch: int
    learning_rate: float
    steps: int
    losses: dict
    seconds: float
    seconds_per_step: float
    monitored: float | None = None
    val_loss: float | None = None
    val_dsb: float | None = None
    layers: str | None = None
    checkpoint: str | None = None
    member: str | None = None
    step_losses: list = field(default_factory=list, repr=False, compare=False)

    @property
    def loss(self) -> float:
        """The mean total training loss."""
        return float(self.losses["loss"])

    def to_dict(self) -> dict:
        """JSON-ready dict (without the per-step losses)."""
        out = dataclasses.asdict(self)
        out.pop("step_losses")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> EpochRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TrainHistory:
    """Every finished epoch of a run, the best one, and why it ended.

    Parameters
    ----------
    monitor
        What picks the best epoch: ``"val_loss"``, ``"loss"`` (lower is better) or ``"val_dsb"``
        (higher is better).
    epochs
        The `EpochRecord` of every finished epoch, in order.
    best_epoch, best_value
        The 1-based best epoch and its monitored value; None until an epoch was monitored.
    stopped_early
        True when early stopping ended the run.
    resumed_from
        The last epoch already done when a run was resumed.
    """

    monitor: str = "loss"
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    resumed_from: int | None = None

    def __post_init__(self):
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")

    def improves(self, value: float, min_delta: float = 0.0) -> bool:
        """Whether `value` beats the best monitored value so far by more than `min_delta`."""
        if self.best_value is None:
            return True
        if MONITORS[self.monitor]:
            return value > self.best_value + min_delta
        return value < self.best_value - min_delta

    def add(self, record: EpochRecord, min_delta: float = 0.0) -> bool:
        """Append `record`; returns whether its monitored value is a new best (then it is recorded)."""
        self.epochs.append(record)
        if record.monitored is None or not self.improves(record.monitored, min_delta):
            return False
        self.best_epoch, self.best_value = record.epoch, float(record.monitored)
        return True

    def epochs_since_best(self) -> int:
        """Monitored epochs finished after the best one (all monitored epochs while there is none)."""
        return sum(1 for e in self.epochs if e.monitored is not None
                   and (self.best_epoch is None or e.epoch > self.best_epoch))

    @property
    def loss(self) -> list[float]:
        """The mean total training loss of every epoch."""
        return [e.loss for e in self.epochs]

    @property
    def val_loss(self) -> list[float | None]:
        return [e.val_loss for e in self.epochs]

    @property
    def monitored(self) -> list[float | None]:
        return [e.monitored for e in self.epochs]

    @property
    def learning_rates(self) -> list[float]:
        return [e.learning_rate for e in self.epochs]

    @property
    def steps(self) -> list[int]:
        return [e.steps for e in self.epochs]

    @property
    def seconds(self) -> list[float]:
        return [e.seconds for e in self.epochs]

    def to_dict(self) -> dict:
        """JSON-ready dict (what `train_state.json` and the model manifests keep)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["epochs"] = [e.to_dict() for e in self.epochs]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainHistory:
        """The inverse of `to_dict`."""
        data = dict(data)
        data["epochs"] = [EpochRecord.from_dict(e) for e in data.get("epochs", [])]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
