"""`python -m analysis_lib`: one entry point with a subcommand per pipeline stage.

Errors are one line naming the file, galaxy or option at fault, with a non-zero exit; never a
traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analysis_lib.config import PROFILES, ConfigError, load_config
from analysis_lib.dataset import DatasetError, open_dataset
from analysis_lib.dataset.build import default_dataset_path


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is reported in one line."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", choices=PROFILES,
                   help="run profile (default: quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any profile parameter, e.g. --set cnn.epochs=5 (repeatable)")
    p.add_argument("--universe", default=None, metavar="NAME",
                   help="mock-universe physics variant from universes.yaml (default: observed)")
    p.add_argument("--instrument", default=None, metavar="NAME",
                   help="observing set-up from instruments.yaml (default: ideal)")


def _dataset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, default=None,
                   help="dataset file (default: data/datasets/<source>_<profile>.h5)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m analysis_lib",
                           description="Galaxy mass estimation with machine learning: "
                           "mock universe or TNG -> dataset -> CNN / LightGBM / JAM -> book.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("dataset", help="generate the HDF5 dataset (images, maps, targets, "
                       "features) from the mock universe or TNG cutouts")
    _common(p)
    p.add_argument("--source", choices=("mock", "tng"), default=None,
                   help="particle source (default: the profile's, mock)")
    p.add_argument("--out", type=Path, default=None, help="output HDF5 file")
    p.add_argument("--cutouts", type=Path, default=None,
                   help="directory of TNG cutout HDF5 files (with --source tng)")
    p.add_argument("--tng-base-path", type=Path, default=None,
                   help="local TNG simulation output directory, read with illustris_python")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="observe the galaxies on a Dask cluster: a scheduler address "
                   "(tcp://host:8786), a scheduler file (*.json) or local:N for N local worker "
                   "processes; the dataset is the same (default: the profile's data.scheduler, "
                   "null = local process pool)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it is not a dataset of this project")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when some galaxies failed (they are listed either way)")

    p = sub.add_parser("train-cnn", help="train the multi-branch ResNet-18 experiments (Table 4)")
    _common(p)
    _dataset_arg(p)
    p.add_argument("--list", action="store_true", help="list the named experiments and exit")
    p.add_argument("--experiments", default=None,
                   help="'all', a tag (headline, smoke) or comma-separated names "
                   "(default: the profile's)")
    p.add_argument("--force", action="store_true", help="retrain runs that already exist")
    p.add_argument("--dry-run", action="store_true",
                   help="check every selected experiment against the dataset (or, when it does "
                   "not exist, the profile), print run/skip and why, train nothing; exit 0 "
                   "when every one can run")

    p = sub.add_parser("train-gbdt", help="train the LightGBM experiments (Table 6)")
    _common(p)
    _dataset_arg(p)
    p.add_argument("--list", action="store_true", help="list the named experiments and exit")
    p.add_argument("--experiments", default=None,
                   help="'all', a tag or comma-separated names (default: the profile's)")
    p.add_argument("--force", action="store_true", help="retrain runs that already exist")

    p = sub.add_parser("jam", help="Jeans anisotropic models of the CNN's test galaxies")
    _common(p)
    _dataset_arg(p)

    p = sub.add_parser("book", help="run every notebook with papermill, then build the book")
    _common(p)
    p.add_argument("--notebooks", default=None,
                   help="comma-separated notebook names to run (default: all, in order)")
    p.add_argument("--no-build", action="store_true", help="execute notebooks only")
    return parser


def _experiments_table(kind: str) -> str:
    from analysis_lib.models.experiments import load_experiments

    lines = []
    for name, spec in load_experiments(kind).items():
        inputs = "+".join(spec.get("inputs", spec.get("features", [])) or [])
        targets = ",".join(spec.get("targets", [spec.get("target", "")]))
        tags = ",".join(spec.get("tags", []))
        lines.append(f"{name:36s} §{spec.get('section', '?'):4s} {inputs:32s} -> {targets:24s}"
                     f" {tags}")
    return "\n".join(lines)


def _cnn_dry_run(cfg: dict, dataset: Path, selection) -> int:
    """`train-cnn --dry-run`: the run/skip table; 0 when every selected experiment can run."""
    from analysis_lib.models.cnn_train import check_selection, format_checks

    checks, against = check_selection(cfg, selection, dataset)
    print(f"checked against {against}")
    print(format_checks(checks))
    return 0 if all(c.runnable for c in checks) else 1


def _train_cnn(cfg: dict, dataset: Path, selection, force: bool) -> int:
    """Every selected experiment, then the power-law baseline; 1 if any experiment failed.

    Under torchrun (WORLD_SIZE > 1) the processes join one group (models/ddp.py); rank 0
    stores the runs and runs the baseline.
    """
    from analysis_lib.models import ddp
    from analysis_lib.models.cnn_train import (
        CNNSelectionError,
        run_cnn_experiments,
        run_power_law_baseline,
    )

    ddp.setup()
    failed = None
    try:
        try:
            paths = run_cnn_experiments(cfg, dataset, selection, force=force)
        except CNNSelectionError as exc:
            failed, paths = exc, exc.paths
        if ddp.is_main():
            paths.append(run_power_law_baseline(cfg, dataset))
            for p in paths:
                print(f"results: {p}")
    finally:
        ddp.teardown()
    if failed is not None:
        if ddp.env_world_size() <= 1 or os.environ.get("RANK", "0") == "0":
            print(f"error: {' '.join(str(failed).split())}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if getattr(args, "source", None):
        overrides.append(f"data.source={args.source}")
    if getattr(args, "universe", None):
        overrides.append(f"mock.universe={args.universe}")
    if getattr(args, "instrument", None):
        overrides.append(f"observe.instrument={args.instrument}")
    cfg = load_config(args.profile, overrides)

    if args.command == "dataset":
        from analysis_lib.dataset.build import build_dataset

        options = {}
        if cfg["data"]["source"] == "tng":
            if args.cutouts is None and args.tng_base_path is None:
                raise ConfigError("--source tng needs --cutouts DIR or --tng-base-path DIR")
            options = {"cutouts_dir": args.cutouts, "base_path": args.tng_base_path}
        if args.workers is not None and args.workers < 0:
            raise ConfigError(f"--workers {args.workers}: must be 0 (all cores) or more")
        if args.scheduler is not None:
            from analysis_lib.dataset.cluster import check_scheduler

            check_scheduler(args.scheduler, "--scheduler")
            if args.workers is not None:
                raise ConfigError("--workers is for the local process pool; with --scheduler "
                                  "the cluster decides (local:N starts N workers)")
        from analysis_lib.dataset.build import dataset_failures, failure_summary

        out = args.out or default_dataset_path(cfg)
        path = build_dataset(cfg, out, options, workers=args.workers, force=args.force,
                             scheduler=args.scheduler)
        failures = dataset_failures(path)
        for line in failure_summary(failures):
            print(line, file=sys.stderr)
        n_failed = int(open_dataset(path).attrs.get("n_failed", 0))
        if n_failed and not args.allow_failures:
            print(f"error: {path}: written without {n_failed} failed galaxies (listed above); "
                  "fix their input and rerun (they are retried), or pass --allow-failures",
                  file=sys.stderr)
            return 1
        print(f"dataset written: {path}")
        return 0

    if args.command in ("train-cnn", "train-gbdt"):
        kind = args.command.split("-")[1]
        if args.list:
            print(_experiments_table(kind))
            return 0
        dataset = args.dataset or default_dataset_path(cfg)
        if getattr(args, "dry_run", False):
            return _cnn_dry_run(cfg, dataset, args.experiments or cfg[kind]["experiments"])
        open_dataset(dataset)  # validate before any model code is imported
        selection = args.experiments or cfg[kind]["experiments"]
        if kind == "cnn":
            return _train_cnn(cfg, dataset, selection, args.force)
        else:
            from analysis_lib.models.gbdt import run_gbdt_experiments

            paths = run_gbdt_experiments(cfg, dataset, selection, force=args.force)
        for p in paths:
            print(f"results: {p}")
        return 0

    if args.command == "jam":
        from analysis_lib.models.jam import run_jam_for_config

        dataset = args.dataset or default_dataset_path(cfg)
        open_dataset(dataset)
        out = run_jam_for_config(cfg, dataset)
        print(f"JAM results: {out}")
        return 0

    if args.command == "book":
        from analysis_lib.presentation.publish import build_book

        names = args.notebooks.split(",") if args.notebooks else None
        html = build_book(cfg, notebooks=names, build=not args.no_build,
                          overrides=list(args.overrides))
        if html is not None:
            print(f"book built: open {html}")
        return 0
    raise ConfigError(f"unknown command '{args.command}'")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from analysis_lib.io import OutputBusyError, os_error_line
    from analysis_lib.models.experiments import ExperimentError
    from analysis_lib.particles import GalaxyInputError
    from analysis_lib.presentation.publish import BookError

    try:
        return run(args)
    except (ConfigError, DatasetError, GalaxyInputError, ExperimentError, ValueError, BookError,
            OutputBusyError) as exc:
        if os.environ.get("ANALYSIS_LIB_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, a directory for a file, a damaged HDF5 chunk, ...
        if os.environ.get("ANALYSIS_LIB_DEBUG"):
            raise
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
