"""TrainConfig: every knob of a training run, overridable from the CLI and the /train body."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    arch: str = "efficientnet_lite0"
    data: str = "../shared/data/chest_xray"
    out: str = "runs/train"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    image_size: int = 224
    seed: int = 0
    val_fraction: float = 0.15
    freeze_epochs: int = 0  # epochs with the pretrained backbone frozen before full fine-tuning
    head_lr_mult: float = 10.0  # head learns faster than a pretrained backbone
    patience: int = 4  # early stopping on validation AUROC
    min_sensitivity: float = 0.95  # operating point chosen on validation
    threshold_augment: str = "standard"  # the threshold keeps min_sensitivity on val under this preset ("none": clean)
    threshold_draws: int = 2  # augmented draws of each validation image for the threshold
    pretrained: bool | None = None  # None: the architecture's default (ImageNet for efficientnet_lite0/1/2)
    init_from: str | None = None  # a model folder to fine-tune from (the /train jobs use this)
    device: str = "auto"
    threads: int | None = None
    amp: bool = True  # only on CUDA
    limit: int | None = None  # use at most this many training images (smoke tests)
    resume: bool = False
    name: str | None = None
    version: str | None = None
    extra_val_from_official: bool = True  # add the official 16-image val split to the validation set
    prefer_given_val: bool = False  # a dataset's own val/ split is the validation set (no carving)
    notes: str = ""
    label_smoothing: float = 0.0
    augment: str = "standard"  # a preset of models.augment.AUGMENT_PRESETS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def resolved_pretrained(self) -> bool:
        return self.arch.startswith("efficientnet_lite") if self.pretrained is None else self.pretrained
