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
        The losses of every step, kept in memory only (not in `to_dict`, not compared, not in the repr).

    Examples
    --------
    >>> record = EpochRecord(epoch=1, learning_rate=1e-3, steps=10, losses={"loss": 0.42}, seconds=5.0,
    ...                      seconds_per_step=0.5)
    >>> record.loss, record.monitored
    (0.42, None)
    >>> EpochRecord.from_dict(record.to_dict()) == record
    True
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
        """The mean total training loss.

        Returns
        -------
        float
            ``losses["loss"]``.

        Examples
        --------
        >>> EpochRecord(1, 1e-3, 10, {"loss": 0.42, "mask": 0.1}, 5.0, 0.5).loss
        0.42
        """
        return float(self.losses["loss"])

    def to_dict(self) -> dict:
        """JSON-ready dict (without the per-step losses).

        Returns
        -------
        dict
            Every field but `step_losses`, by name.

        Examples
        --------
        >>> record = EpochRecord(1, 1e-3, 10, {"loss": 0.42}, 5.0, 0.5, step_losses=[{"loss": 0.4}])
        >>> "step_losses" in record.to_dict(), record.to_dict()["epoch"]
        (False, 1)
        """
        out = dataclasses.asdict(self)
        out.pop("step_losses")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> EpochRecord:
        """The inverse of `to_dict`; keys that are not fields are ignored (files of other versions).

        Parameters
        ----------
        data : dict
            A dict as `to_dict` writes it.

        Returns
        -------
        EpochRecord
            The record, with empty `step_losses`.

        Examples
        --------
        >>> EpochRecord.from_dict({"epoch": 3, "learning_rate": 1e-4, "steps": 5, "losses": {"loss": 0.3},
        ...                        "seconds": 1.0, "seconds_per_step": 0.2, "unknown": 1}).epoch
        3
        """
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

    Raises
    ------
    ValueError
        When `monitor` is not one of `MONITORS`.

    Examples
    --------
    >>> history = TrainHistory(monitor="val_loss")
    >>> history.add(EpochRecord(1, 1e-3, 10, {"loss": 0.6}, 5.0, 0.5, monitored=0.5, val_loss=0.5))
    True
    >>> history.add(EpochRecord(2, 1e-3, 10, {"loss": 0.5}, 5.0, 0.5, monitored=0.55, val_loss=0.55))
    False
    >>> history.best_epoch, history.best_value, history.epochs_since_best()
    (1, 0.5, 1)
    >>> history.loss, history.val_loss
    ([0.6, 0.5], [0.5, 0.55])
    >>> TrainHistory.from_dict(history.to_dict()) == history
    True
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
        """Whether `value` beats the best monitored value so far by more than `min_delta`.

        Parameters
        ----------
        value : float
            A monitored value.
        min_delta : float, optional
            The margin it must beat the best by (default 0.0).

        Returns
        -------
        bool
            True while there is no best value yet; else whether `value` is lower (``"loss"``,
            ``"val_loss"``) or higher (``"val_dsb"``) than the best by more than `min_delta`.

        Examples
        --------
        >>> history = TrainHistory(monitor="val_dsb", best_epoch=2, best_value=0.6)
        >>> history.improves(0.61), history.improves(0.61, min_delta=0.05)
        (True, False)
        """
        if self.best_value is None:
            return True
        if MONITORS[self.monitor]:
            return value > self.best_value + min_delta
        return value < self.best_value - min_delta

    def add(self, record: EpochRecord, min_delta: float = 0.0) -> bool:
        """Append `record`; returns whether its monitored value is a new best (then it is recorded).

        Parameters
        ----------
        record : EpochRecord
            The finished epoch.
        min_delta : float, optional
            The margin by which its `monitored` value must beat the best (default 0.0, see `improves`).

        Returns
        -------
        bool
            True when `record.monitored` is set and improves on the best; `best_epoch` and `best_value`
            are then updated. False for an epoch without a monitored value.

        Examples
        --------
        >>> history = TrainHistory(monitor="loss")
        >>> history.add(EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5, monitored=0.5))
        True
        >>> history.add(EpochRecord(2, 1e-3, 4, {"loss": 0.4}, 2.0, 0.5))  # not monitored
        False
        >>> len(history.epochs), history.best_epoch
        (2, 1)
        """
        self.epochs.append(record)
        if record.monitored is None or not self.improves(record.monitored, min_delta):
            return False
        self.best_epoch, self.best_value = record.epoch, float(record.monitored)
        return True

    def epochs_since_best(self) -> int:
        """Monitored epochs finished after the best one (all monitored epochs while there is none).

        What early stopping compares with its patience.

        Returns
        -------
        int
            The number of epochs with a monitored value after `best_epoch`.

        Examples
        --------
        >>> history = TrainHistory(monitor="loss")
        >>> for epoch, value in enumerate([0.5, 0.4, 0.45, 0.41], start=1):
        ...     _ = history.add(EpochRecord(epoch, 1e-3, 4, {"loss": value}, 2.0, 0.5, monitored=value))
        >>> history.best_epoch, history.epochs_since_best()
        (2, 2)
        """
        return sum(1 for e in self.epochs if e.monitored is not None
                   and (self.best_epoch is None or e.epoch > self.best_epoch))

    @property
    def loss(self) -> list[float]:
        """The mean total training loss of every epoch.

        Returns
        -------
        list of float
            `EpochRecord.loss` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5)]).loss
        [0.5]
        """
        return [e.loss for e in self.epochs]

    @property
    def val_loss(self) -> list[float | None]:
        """The validation loss of every epoch (None where not measured).

        Returns
        -------
        list of float or None
            `EpochRecord.val_loss` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5, val_loss=0.6)]).val_loss
        [0.6]
        """
        return [e.val_loss for e in self.epochs]

    @property
    def monitored(self) -> list[float | None]:
        """The monitored value of every epoch (None where the epoch was not validated).

        Returns
        -------
        list of float or None
            `EpochRecord.monitored` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5)]).monitored
        [None]
        """
        return [e.monitored for e in self.epochs]

    @property
    def learning_rates(self) -> list[float]:
        """The learning rate of every epoch.

        Returns
        -------
        list of float
            `EpochRecord.learning_rate` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5)]).learning_rates
        [0.001]
        """
        return [e.learning_rate for e in self.epochs]

    @property
    def steps(self) -> list[int]:
        """The number of training steps of every epoch.

        Returns
        -------
        list of int
            `EpochRecord.steps` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5)]).steps
        [4]
        """
        return [e.steps for e in self.epochs]

    @property
    def seconds(self) -> list[float]:
        """The wall time of every epoch, in seconds.

        Returns
        -------
        list of float
            `EpochRecord.seconds` of every epoch, in order.

        Examples
        --------
        >>> TrainHistory(epochs=[EpochRecord(1, 1e-3, 4, {"loss": 0.5}, 2.0, 0.5)]).seconds
        [2.0]
        """
        return [e.seconds for e in self.epochs]

    def to_dict(self) -> dict:
        """JSON-ready dict (what `train_state.json` and the model manifests keep).

        Returns
        -------
        dict
            Every field by name, the epochs as `EpochRecord.to_dict` (without per-step losses).

        Examples
        --------
        >>> TrainHistory(monitor="val_dsb").to_dict()
        {'monitor': 'val_dsb', 'epochs': [], 'best_epoch': None, 'best_value': None, 'stopped_early': False,
         'resumed_from': None}
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["epochs"] = [e.to_dict() for e in self.epochs]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainHistory:
        """The inverse of `to_dict`.

        Keys that are not fields are ignored, in the history and in its epochs.

        Parameters
        ----------
        data : dict
            A dict as `to_dict` writes it (e.g. the ``"history"`` of `train_state.json`).

        Returns
        -------
        TrainHistory
            The history; its epochs have empty `EpochRecord.step_losses`.

        Examples
        --------
        >>> history = TrainHistory.from_dict({"monitor": "val_loss", "best_epoch": 1, "best_value": 0.5,
        ...     "epochs": [{"epoch": 1, "learning_rate": 1e-3, "steps": 4, "losses": {"loss": 0.6},
        ...                 "seconds": 2.0, "seconds_per_step": 0.5, "monitored": 0.5, "val_loss": 0.5}]})
        >>> history.best_epoch, history.loss
        (1, [0.6])
        """
        data = dict(data)
        data["epochs"] = [EpochRecord.from_dict(e) for e in data.get("epochs", [])]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
