"""The classifier's parameters as one frozen record, and the seed of a fit."""

import dataclasses
from numbers import Integral

from sklearn.utils import check_random_state

from ..architecture import NETWORK_PARAMETERS, SHAPE_PARAMETERS


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one fit needs to know of ``PneumoniaCNNClassifier``'s parameters.

    Built once per fit by the classifier (:meth:`from_params`), so that the
    training code reads plain values and never the estimator.
    """

    n_conv_blocks: int
    filters: int
    kernel_size: int
    dense_units: int
    dropout: float
    batch_norm: bool
    padding: str
    head: str
    optimizer: str
    learning_rate: float
    label_smoothing: float
    rotation: float
    zoom: float
    shift: float
    contrast: float
    blur: float
    lr_schedule: str
    batch_size: int
    epochs: int
    early_stopping: bool
    validation_fraction: float
    monitor: str
    patience: int
    class_weight: object
    threshold: object
    target_recall: float | None
    calibration: str | None
    prevalence: float | None
    input_check: float | None
    callbacks: tuple
    verbose: int

    @classmethod
    def from_params(cls, params):
        """The record of an estimator's ``get_params()``; other entries are ignored."""
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in params.items() if name in fields}
        values["callbacks"] = tuple(values["callbacks"] or ())
        return cls(**values)

    @property
    def shape(self):
        """The parameters that decide the shapes of the network's weights."""
        return {name: getattr(self, name) for name in SHAPE_PARAMETERS}

    @property
    def network(self):
        """Every argument of :func:`~pneumoclf.architecture.build_cnn` but the seed."""
        return {name: getattr(self, name) for name in NETWORK_PARAMETERS}

    @property
    def needs_validation(self):
        """Whether a fit with these settings holds out a validation part."""
        return (
            self.early_stopping
            or self.lr_schedule == "plateau"
            or self.threshold == "auto"
            or self.calibration is not None
        )


def draw_seed(random_state):
    """The integer seed of one fit, or None for an unseeded one."""
    if random_state is None:
        return None
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))
