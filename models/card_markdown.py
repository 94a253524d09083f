"""The human-readable model card (MODEL_CARD.md) rendered from card.json, the one source of truth.

Written beside every saved model so that a reviewer (hospital IT, a radiologist, an auditor) can
read intended use, limits, data, operating point and measured performance without parsing JSON.
"""

from __future__ import annotations

from pathlib import Path

from models.card import ModelCard, SplitMetrics, write_atomic

MARKDOWN_FILE = "MODEL_CARD.md"

SPLIT_TITLES = {"val": "validation (patient-level split of the training data)",
                "val_augmented": "validation under the training augmentation (where the threshold was chosen)",
                "test": "shared test split",
                "calibration_out_of_fold": "calibration images, cross-fitted (out of fold)"}


def _metrics_rows(metrics: dict[str, SplitMetrics]) -> list[str]:
    rows = ["| split | images | AUROC | accuracy | sensitivity | specificity | F1 | ECE | confusion (TN FP / FN TP) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for split, m in metrics.items():
        cm = (m.model_extra or {}).get("confusion_matrix", {}).get("rows_true_cols_pred")
        confusion = f"{cm[0][0]} {cm[0][1]} / {cm[1][0]} {cm[1][1]}" if cm else ""
        f1 = f"{m.f1:.3f}" if m.f1 is not None else ""
        ece = f"{m.ece:.3f}" if m.ece is not None else ""
        rows.append(f"| {SPLIT_TITLES.get(split, split)} | {m.n} | {m.auroc:.4f} | {m.accuracy:.3f} | "
                    f"{m.sensitivity:.3f} | {m.specificity:.3f} | {f1} | {ece} | {confusion} |")
    return rows


def render_markdown(card: ModelCard) -> str:
    t = card.training
    extra = t.model_extra or {}
    spec = card.input
    lines = [
        f"# Model card: {card.name} {card.version}",
        "",
        "<!-- generated from card.json by models/card_markdown.py; edit the card, not this file -->",
        "",
        f"**Intended use.** {card.intended_use}",
        "",
        f"**Limitations.** {card.limitations}",
        "",
        "## Model",
        "",
        f"- Architecture: `{card.architecture}`, {card.num_parameters:,} parameters"
        + (f", initialised from {card.pretrained}" if card.pretrained else ", trained from scratch"),
        f"- Classes: {', '.join(card.classes)}",
        f"- Input: {spec.channels}-channel {spec.image_size}×{spec.image_size}, resize `{spec.resize}`, "
        f"normalised with mean {spec.mean} / std {spec.std}; decode: {spec.decode}",
        f"- Weights: `{card.weights_file}` (safetensors), sha256 `{card.sha256}`",
        f"- Created: {card.created}",
    ]
    if card.base_model:
        lines.append(f"- Fine-tuned from: `{card.base_model}`")
    lines += [
        "",
        "## Operating point",
        "",
        f"- Decision threshold on the calibrated P(PNEUMONIA): **{card.threshold:.4f}**",
        f"- Temperature: {card.temperature:.4f}" + (f", bias {card.bias:+.4f}" if card.bias else ""),
    ]
    if card.operating_point:
        lines.append(f"- How: {card.operating_point}")
    if card.urgent_threshold is not None:
        lines.append(f"- Worklist priority: **urgent** when P(PNEUMONIA) >= **{card.urgent_threshold:.4f}**, "
                     "else routine")
        if card.urgent_rule:
            lines.append(f"- How: {card.urgent_rule}")
        if (u := card.urgent_out_of_fold) is not None:
            lines.append(f"- Urgent, out of fold: specificity {u.specificity:.3f}, sensitivity {u.sensitivity:.3f}, "
                         f"PPV {u.ppv if u.ppv is None else f'{u.ppv:.3f}'}, {u.urgent_share:.1%} of images")
    else:
        lines.append("- Worklist priority: no urgent point on this card; every image called PNEUMONIA is urgent")
    lines += ["", "## Performance", "", *_metrics_rows(card.metrics)]
    if card.base_metrics:
        lines += ["", f"Base model `{card.base_model}` on the same validation split:", "",
                  *_metrics_rows(card.base_metrics)]
    if card.calibration:
        lines += ["", *_calibration_lines(card)]
    if card.integrity:
        i = card.integrity
        lines += ["", "## Input integrity", "",
                  f"The integrity guard `{i.get('guard')}` {i.get('guard_version')} accepted "
                  f"{(i.get('accepted') or 0):.1%} of {i.get('n')} validation images of this version."]
    lines += [
        "",
        "## Training data",
        "",
        f"- Data: `{t.data}` ({card.data_license})",
        f"- Validation: {t.val_fraction:.0%} of the training patients, split by patient (seed {t.patient_split_seed})",
    ]
    for split, counts in t.counts.items():
        lines.append(f"- {split}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if extra.get("skipped_files"):
        lines.append(f"- Unreadable files skipped: {extra['skipped_files']}")
    lines += ["", "## How it was made", ""]
    if t.notes:
        lines += [t.notes, ""]
    lines += ["```", t.command, "```"]
    if t.epochs_run:
        lines.append(f"\n{t.epochs_run} epochs, best epoch {t.best_epoch}, {t.duration_s / 60:.1f} minutes.")
    members = extra.get("members") or []
    if members:
        lines += ["", "Members of the weight soup (uniform average):", ""]
        for m in members:
            lines.append(f"- `{m['name']}` {m['version']}, sha256 `{m['sha256'][:16]}…`: `{m['command']}`")
    if extra.get("recalibrated_by"):
        lines += ["", f"Operating point refitted by `{extra['recalibrated_by']}` (weights unchanged)."]
    return "\n".join(lines) + "\n"


def _calibration_lines(card: ModelCard) -> list[str]:
    c = card.calibration
    assert c is not None
    prev = c.previous.get("figures_on_these_images", {})
    lines = ["## Site calibration", "",
             f"Weights of `{c.calibrated_from}` (same sha256); operating point ({c.method}) fitted on `{c.data}`: "
             + ", ".join(f"{k} {v:,}" for k, v in c.counts.items())
             + f" images of {c.patients:,} patients ({c.refused} refused by the integrity check, {c.unreadable} "
             f"unreadable). Figures below are cross-fitted: {c.folds} folds by patient, each fold scored by an "
             "operating point fitted on the others; 95 % intervals from a bootstrap over patients.", "",
             "| figure | out of fold | 95 % interval | previous operating point on these images |",
             "|---|---:|---|---:|"]
    for m, f in c.out_of_fold.items():
        before = prev.get(m)
        lines.append(f"| {m} | {f.value:.3f} | {f.ci95[0]:.3f}–{f.ci95[1]:.3f} | "
                     + (f"{before:.3f}" if isinstance(before, (int, float)) else "") + " |")
    lines += ["", f"Made by `{c.command}` on {c.created}."]
    return lines


def write_markdown(folder: Path, card: ModelCard) -> Path:
    path = Path(folder) / MARKDOWN_FILE
    write_atomic(path, render_markdown(card).encode("utf-8"))
    return path
