"""`cxr` command line: train, soup, calibrate, recalibrate, evaluate, card, integrity, audit, serve."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import CXRError

from app.cli_ops import cmd_audit, cmd_db, cmd_worker
from app.core.logging import quiet_libraries

if TYPE_CHECKING:  # the heavy imports stay lazy so `cxr --help` is instant
    from models.card import ModelCard


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from models.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model and write carded safetensors weights")
    p.add_argument("--data", default=d.data, help="folder with train/{NORMAL,PNEUMONIA} (val/, test/ optional)")
    p.add_argument("--arch", default=d.arch, help="simple_cnn | resnet18 | efficientnet_lite0 | efficientnet_lite1 | efficientnet_lite2")
    p.add_argument("--out", default=None, help="model folder to write (default runs/<arch>)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--freeze-epochs", type=int, default=d.freeze_epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--augment", default=d.augment, help="augmentation preset: standard | strong | robust | none")
    p.add_argument("--threshold-augment", default=d.threshold_augment,
                   help="augmentation preset the screening threshold must hold under (none: clean validation images)")
    p.add_argument("--threshold-draws", type=int, default=d.threshold_draws, help="augmented draws per validation image")
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--limit", type=int, default=None, help="train on at most N images (smoke runs)")
    p.add_argument("--no-pretrained", action="store_true", help="do not start from ImageNet weights")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/checkpoint.pt")
    p.add_argument("--name", default=None)
    p.add_argument("--version", default=None)
    p.add_argument("--notes", default="")
    p.add_argument("--overfit-batch", action="store_true", help="sanity check: drive one batch's loss to ~0 and exit")


def _cmd_train(args: argparse.Namespace) -> int:
    from models.config import TrainConfig

    if args.overfit_batch:
        from models.sanity import overfit_one_batch

        result = overfit_one_batch(args.arch, image_size=64, seed=args.seed)  # memorising needs no big images
        print(json.dumps(result))
        return 0 if result["passed"] else 1
    from models.package import train_and_package

    cfg = TrainConfig(
        arch=args.arch, data=args.data, out=args.out or f"runs/{args.arch}", epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, image_size=args.image_size,
        seed=args.seed, val_fraction=args.val_fraction, freeze_epochs=args.freeze_epochs, patience=args.patience,
        label_smoothing=args.label_smoothing, augment=args.augment, threshold_augment=args.threshold_augment,
        threshold_draws=args.threshold_draws, device=args.device, threads=args.threads, limit=args.limit,
        pretrained=False if args.no_pretrained else None, resume=args.resume, name=args.name,
        version=args.version, notes=args.notes,
    )
    card = train_and_package(cfg, command=_command_line())
    _print_card(card, cfg.out)
    return 0


def _packaging_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="the data the model(s) were trained on (default: theirs)")
    p.add_argument("--version", default=None)
    p.add_argument("--threshold-augment", default=None,
                   help="augmentation preset the threshold must hold under (default standard; none: clean images)")
    p.add_argument("--threshold-draws", type=int, default=None, help="augmented draws per validation image")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def _packaging_overrides(args: argparse.Namespace, **extra: object) -> dict[str, object]:
    return {"data": args.data, "version": args.version, "threshold_augment": args.threshold_augment,
            "threshold_draws": args.threshold_draws, "device": args.device, "threads": args.threads, **extra}


def _print_card(card: ModelCard, out: str) -> None:
    print(json.dumps({"out": out, "name": card.name, "version": card.version, "sha256": card.sha256,
                      "threshold": card.threshold, "temperature": card.temperature,
                      "metrics": {k: v.model_dump() for k, v in card.metrics.items()}}))


def _cmd_soup(args: argparse.Namespace) -> int:
    from models.soup import soup_and_package

    card = soup_and_package([Path(m) for m in args.model], _packaging_overrides(
        args, out=args.out, name=args.name, notes=args.notes), command=_command_line())
    _print_card(card, args.out)
    return 0


def _cmd_recalibrate(args: argparse.Namespace) -> int:
    from models.recalibrate import recalibrate

    folder = _find_model(args.model)
    card = recalibrate(folder, _packaging_overrides(args), command=_command_line())
    _print_card(card, str(folder))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from models.integrity.check import screener
    from models.site_calibration import site_calibrate

    settings = _settings()
    folder = _find_model(args.model)
    guard = None if args.no_integrity else Path(args.guard) if args.guard else settings.integrity_guard_dir
    card = site_calibrate(folder, Path(args.data), Path(args.out), command=_command_line(), version=args.version,
                          min_sensitivity=args.min_sensitivity, folds=args.folds, method=args.method,
                          min_per_class=settings.calibration_min_per_class, screen=screener(guard))
    assert card.calibration is not None
    print(json.dumps({"out": args.out, "name": card.name, "version": card.version, "sha256": card.sha256,
                      "temperature": card.temperature, "bias": card.bias, "threshold": card.threshold,
                      "counts": card.calibration.counts, "refused": card.calibration.refused,
                      "out_of_fold": {k: v.model_dump() for k, v in card.calibration.out_of_fold.items()},
                      "previous": card.calibration.previous}))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from models.card import read_card
    from models.card_markdown import render_markdown, write_markdown

    folder = _find_model(args.model)
    card = read_card(folder)
    if args.write:
        print(write_markdown(folder, card))
    else:
        sys.stdout.write(render_markdown(card))
    return 0


def _settings():  # type: ignore[no-untyped-def]  # -> Settings
    """The server's settings (CXR_* variables): the CLI finds models and the guard where the server does."""
    from app.core.config import Settings

    return Settings()


def _find_model(name: str | None) -> Path:
    """A model folder by the server's lookup rule (app.inference.catalog.catalog_of)."""
    from app.inference.catalog import catalog_of

    return catalog_of(_settings()).find(name).folder


def _command_line() -> str:
    return "cxr " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate

    settings = _settings()
    # the guard the server would use: CXR_INTEGRITY_GUARD, else CXR_WEIGHTS_DIR/integrity_guard
    guard = None if args.no_integrity else Path(args.guard) if args.guard else settings.integrity_guard_dir
    report = evaluate(_find_model(args.model), Path(args.data), device=args.device,
                      plot=Path(args.plot) if args.plot else None, guard=guard)
    print(json.dumps(report))
    return 0


def _cmd_integrity(args: argparse.Namespace) -> int:
    from models.integrity.fit import fit

    card = fit(Path(args.data), Path(args.out), command=_command_line(), version=args.version,
               image_size=args.image_size, seed=args.seed)
    print(json.dumps({"out": args.out, "name": card.name, "version": card.version, "sha256": card.sha256,
                      "threshold": card.threshold, "metrics": card.metrics}))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from app.serve import serve

    return serve(host=args.host, port=args.port, model=args.model, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr", description="Chest X-ray pneumonia screening")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("evaluate", help="evaluate a model on a labelled folder; prints one JSON object")
    e.add_argument("--model", default=None, help="shipped model name or model folder (default: the default model)")
    e.add_argument("--data", required=True, help="folder with NORMAL/ and PNEUMONIA/ (or a split root: uses test/)")
    e.add_argument("--device", default="auto")
    e.add_argument("--plot", default=None, help="write a ROC + reliability diagram PNG here")
    e.add_argument("--guard", default=None, help="integrity guard folder (default: the server's, CXR_INTEGRITY_GUARD "
                   "or CXR_WEIGHTS_DIR/integrity_guard)")
    e.add_argument("--no-integrity", action="store_true",
                   help="score every readable image (default: images the integrity check refuses are counted, not scored)")
    so = sub.add_parser("soup", help="average the weights of several fine-tunes of one backbone into one model")
    so.add_argument("--model", action="append", required=True, help="a member model folder (repeat, two or more)")
    so.add_argument("--out", required=True, help="model folder to write")
    so.add_argument("--name", default=None)
    so.add_argument("--notes", default=None)
    _packaging_args(so)
    c = sub.add_parser("calibrate", help="a new version of a model with its temperature, bias and threshold refitted "
                       "on a site's labelled images (weights unchanged); prints cross-fitted figures")
    c.add_argument("--model", default=None, help="model name or folder to calibrate (default: the default model)")
    c.add_argument("--data", required=True, help="folder with NORMAL/ and PNEUMONIA/ (or a split root: uses test/)")
    c.add_argument("--out", required=True, help="model folder to write (new or empty; or the model's own folder "
                   "to replace it), e.g. $CXR_STATE_DIR/models/NAME-site to serve it")
    c.add_argument("--version", default=None, help="default: <version>+cal.<UTC time>")
    c.add_argument("--min-sensitivity", type=float, default=0.95, help="the threshold keeps at least this sensitivity")
    c.add_argument("--method", choices=["platt", "temperature"], default="platt",
                   help="platt: temperature and bias (default); temperature: temperature only")
    c.add_argument("--folds", type=int, default=5, help="cross-fitting folds (split by patient)")
    c.add_argument("--guard", default=None, help="integrity guard folder (default: the server's)")
    c.add_argument("--no-integrity", action="store_true", help="use every readable image, even ones the "
                   "integrity check refuses (default: calibrate on the images the service would read)")
    r = sub.add_parser("recalibrate", help="refit a model's temperature and threshold on its validation split, in "
                       "place (weights unchanged)")
    r.add_argument("--model", required=True, help="shipped model name or model folder; its card is rewritten")
    _packaging_args(r)
    k = sub.add_parser("card", help="print a model's card as Markdown (--write: as MODEL_CARD.md beside it)")
    k.add_argument("--model", default=None, help="shipped model name or model folder (default: the default model)")
    k.add_argument("--write", action="store_true")
    g = sub.add_parser("integrity", help="input-integrity guard: 'fit' refits the frontal-chest check")
    g.add_argument("action", choices=["fit"])
    g.add_argument("--data", default="../shared/data", help="folder with chest_xray/train and ood/<category>")
    g.add_argument("--out", default="weights/integrity_guard", help="guard folder to write")
    g.add_argument("--version", default="1.0.0")
    g.add_argument("--image-size", type=int, default=96)
    g.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("audit", help="'verify' checks the audit trail's hash chain and says where it breaks "
                       "(exit 0 intact, 1 broken)")
    a.add_argument("action", choices=["verify"])
    a.add_argument("--db", default=None, help="database URL or SQLite file holding the trail (default: CXR_DATABASE_URL, "
                   "else CXR_STATE_DIR/jobs.sqlite3; a server's own audit.sqlite3 while it is not yet copied in)")
    d = sub.add_parser("db", help="'upgrade' applies the schema migrations to CXR_DATABASE_URL (or the SQLite "
                       "default); 'current' prints its revision")
    d.add_argument("action", choices=["upgrade", "current"])
    sub.add_parser("worker", help="claim and run training/calibration jobs from the database (with servers at "
                   "CXR_WORKERS=external; CXR_DATABASE_URL and CXR_STATE_DIR shared with them)")
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--model", default=None)
    s.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(args.verbose)
    handlers = {"train": _cmd_train, "evaluate": _cmd_evaluate, "serve": _cmd_serve, "soup": _cmd_soup,
                "calibrate": _cmd_calibrate, "recalibrate": _cmd_recalibrate, "card": _cmd_card, "integrity": _cmd_integrity, "audit": cmd_audit,
                "db": cmd_db, "worker": cmd_worker}
    try:
        return handlers[args.command](args)
    except CXRError as exc:
        print(f"cxr {args.command}: error: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
