"""The training loop: ``fit(config, on_progress)`` -> best weights and their validation logits.

Readable in one sitting: data is decoded once into uint8 tensors, each step normalizes,
augments, runs forward/backward with AdamW and a warmup+cosine learning rate, and each
epoch ends with validation AUROC, a checkpoint, and early stopping. ``models/package.py``
turns the result into calibrated, carded weights.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from models.config import TrainConfig
from models.data import TensorDataset
from models.device import select_device
from models.inference import predict_logits
from models.metrics import auroc
from models.augment import augment_batch, check_preset
from models.transforms import PreprocessSpec

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
CHECKPOINT = "checkpoint.pt"


class TrainingCancelled(Exception):
    """Raised between steps when ``should_stop`` says so."""


@dataclass
class FitResult:
    model: nn.Module
    val_logits: torch.Tensor
    best_epoch: int
    best_auroc: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0


def get_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warmup, then cosine decay to 1% of ``base_lr``. Pure: same inputs, same answer."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    for p in model.features.parameters():
        p.requires_grad_(not frozen)
    model.features.train(not frozen)  # frozen: batch-norm statistics stay the pretrained ones


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    head_mult = cfg.head_lr_mult if (cfg.resolved_pretrained() or cfg.init_from) else 1.0
    backbone = list(model.features.parameters())
    head = [p for n, p in model.named_parameters() if not n.startswith("features.")]
    return [{"params": backbone, "lr_mult": 1.0}, {"params": head, "lr_mult": head_mult}]


def fit(
    cfg: TrainConfig,
    model: nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    spec: PreprocessSpec,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    augment = check_preset(cfg.augment)
    check_preset(cfg.threshold_augment, "threshold augmentation")  # before hours of training, not after
    device = select_device(cfg.device)
    gen = seed_everything(cfg.seed)
    model.to(device)
    counts = torch.bincount(train.labels, minlength=2).float()
    class_weights = (counts.sum() / (2 * counts.clamp(min=1))).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=cfg.label_smoothing)
    opt = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_frac * total_steps))

    ckpt_dir = Path(cfg.out) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, step, best_auroc, best_epoch, stale = 0, 0, -1.0, -1, 0
    best_state: dict[str, torch.Tensor] = {}
    history: list[dict[str, float]] = []
    if cfg.resume and (ckpt_dir / CHECKPOINT).is_file():
        ck = torch.load(ckpt_dir / CHECKPOINT, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        start_epoch, step, best_auroc, best_epoch, stale = ck["epoch"], ck["step"], ck["best_auroc"], ck["best_epoch"], ck["stale"]
        history = ck["history"]
        gen.set_state(ck["generator"])
        log.info("resumed from %s at epoch %d (best val AUROC %.4f)", ckpt_dir / CHECKPOINT, start_epoch, best_auroc)

    t_start = time.perf_counter()
    seen = 0
    val_labels = val.labels.numpy()
    for epoch in range(start_epoch, cfg.epochs):
        if stale >= cfg.patience:
            log.info("early stopping: no validation AUROC gain for %d epochs", stale)
            break
        frozen = epoch < cfg.freeze_epochs
        model.train()
        _set_backbone_frozen(model, frozen)
        order = torch.randperm(len(train), generator=gen)
        t0, total_loss, n_seen = time.perf_counter(), 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   mininterval=0.2 if sys.stderr.isatty() else 30.0)
        for i in bar:
            if should_stop is not None and should_stop():
                raise TrainingCancelled("training cancelled")
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = augment_batch(spec.normalize(train.images[idx]).unsqueeze(1), gen, mean=spec.mean, std=spec.std,
                              **augment).to(device)
            y = train.labels[idx].to(device)
            lr = get_lr(step, total_steps, cfg.lr, warmup)
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_mult"]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            total_loss += loss.item() * len(idx)
            n_seen += len(idx)
            ips = n_seen / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{total_loss / n_seen:.4f}", ips=f"{ips:.1f}", refresh=False)
            if on_progress is not None:
                on_progress({"epoch": epoch + 1, "epochs": cfg.epochs, "step": step, "total_steps": total_steps,
                             "images_per_s": round(ips, 2), "eta_s": round((total_steps - step) * len(idx) / max(ips, 1e-6), 1),
                             "loss": round(total_loss / n_seen, 5)})
        bar.close()
        seconds = time.perf_counter() - t0
        seen += n_seen
        logits = predict_logits(model, val.images, spec, device)
        val_loss = float(nn.functional.cross_entropy(logits, val.labels, weight=class_weights.cpu()))
        val_auc = auroc(val_labels, torch.softmax(logits, 1)[:, 1].numpy())
        row = {"epoch": epoch + 1, "train_loss": round(total_loss / max(n_seen, 1), 5), "val_loss": round(val_loss, 5),
               "val_auroc": round(val_auc, 5), "lr": lr, "images_per_s": round(n_seen / seconds, 2),
               "seconds": round(seconds, 1), "frozen_backbone": frozen}
        history.append(row)
        log.info("epoch %d/%d loss %.4f val_loss %.4f val_auroc %.4f lr %.2e img/s %.1f (%.0f s)%s", epoch + 1,
                 cfg.epochs, row["train_loss"], val_loss, val_auc, lr, row["images_per_s"], seconds,
                 " [backbone frozen]" if frozen else "")
        if val_auc > best_auroc:
            best_auroc, best_epoch, stale = val_auc, epoch + 1, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        tmp = ckpt_dir / (CHECKPOINT + ".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "best_state": best_state,
                    "epoch": epoch + 1, "step": step, "best_auroc": best_auroc, "best_epoch": best_epoch,
                    "stale": stale, "history": history, "generator": gen.get_state(), "config": cfg.to_dict()}, tmp)
        tmp.replace(ckpt_dir / CHECKPOINT)
        if on_progress is not None:
            on_progress({"epoch_done": row})

    model.load_state_dict(best_state)
    model.eval()
    elapsed = time.perf_counter() - t_start
    return FitResult(model=model, val_logits=predict_logits(model, val.images, spec, device), best_epoch=best_epoch,
                     best_auroc=best_auroc, epochs_run=len(history), history=history, seconds=elapsed,
                     images_per_s=seen / elapsed if elapsed else 0.0)
