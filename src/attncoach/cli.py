"""The ``attncoach`` command line: parse, call, print.

    attncoach train [--config FILE] [section.key=value ...]
    attncoach train --resume RUN_DIR
    attncoach pretrain [--config FILE] [section.key=value ...]   (masked-language modelling: a backbone for train)
    attncoach eval RUN_OR_MODEL_DIR [--data FILE] [--model MODEL_DIR] [--runtime torch|onnx] [--json]
    attncoach predict RUN_OR_MODEL_DIR "text" ... | --input FILE [--output FILE.jsonl [--overwrite]] [--no-text]
                      [--batch-size N] [--runtime torch|onnx]
    attncoach translate RUN_OR_MODEL_DIR "text" ... | --input FILE [--output FILE [--overwrite]] [--beam N]
                        [--length-penalty A] [--batch-size N] [--width W [--depth D] | --subnet FILE.json]
    attncoach export RUN_OR_MODEL_DIR [--width W [--depth D] | --subnet FILE.json] [--quantize int8] [--onnx] --out DIR
    attncoach export RUN_OR_MODEL_DIR --family [--widths W ...] [--depths D ...] [--quantize int8] [--onnx] --out DIR
    attncoach subnets RUN [--out FILE.json [--overwrite]] [--batch-sizes 1 32]
    attncoach search RUN [--max-latency-ms MS [--batch B]] [--max-params N] [--out FILE.json [--overwrite]] [--seed S]
    attncoach examples RUN [--hardest N | --suspect N [--by SCORE] | --unforgettable N] [--json]
    attncoach clean RUN --out FILE (--drop N | --relabel N) [--by SCORE]
    attncoach serve RUN_OR_MODEL_DIR [--host 127.0.0.1] [--port 8000] [--api-key-env VAR] [--max-batch B] ...
    attncoach report RUN [RUN ...] [--out FILE.html]
    attncoach attention RUN_OR_MODEL_DIR "text" [--out FILE.html|FILE.png] [--layer L] [--head H]
    attncoach tune [--config FILE] --trials N [--backend optuna|ray] [--out DIR] [--storage URL|memory] [--study NAME]
                   [--address HOST:PORT]
                   [--retrain-best [--retrain-seeds S ...]] [section.key=value ...]
    attncoach select RUN --pool FILE --budget N [--strategy entropy|margin|badge|coreset|random] [--out FILE [--overwrite]]
    attncoach active [--config FILE] --start N --step N --rounds N [--strategy S] [--out DIR] [section.key=value ...]
    attncoach robustness RUN [--data FILE] [--seed S] [--attack-examples N] [--query-budget Q] [--no-textattack]
                         [--json] [--out FILE.json [--overwrite]]

Options and positional arguments may come in any order. Problems with the user's input end
with one line on stderr and exit status 2, a bug with exit status 1; ``--debug`` adds the
traceback and keeps the status. SIGINT ends with ``interrupted`` (130), SIGTERM with
``terminated`` (143); a run stopped either way resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from attncoach import __version__
from attncoach.errors import AttncoachError

log = logging.getLogger("attncoach")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it stops the way Ctrl-C does."""


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: options and positional arguments in any order, and its own usage on errors.

    Plain argparse gives every positional its values at their first run, so ``predict RUN --width 0.5
    "text"`` would leave "text" over, reported with the top-level usage.
    """

    _parsing = False

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # parse_known_intermixed_args calls back here, twice (in some Python versions)
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            namespace, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar or info lines (for scripts)"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors"
    )
    parser = argparse.ArgumentParser(
        prog="attncoach", parents=[common], description="Train attention models that adapt while they train."
    )
    parser.add_argument("--version", action="version", version=f"attncoach {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    train = sub.add_parser("train", parents=[common], help="train a model into a run directory")
    train.add_argument("--config", help="YAML config file (optional: defaults plus overrides make a valid run)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    _add_overrides(train, "config overrides, values parsed as YAML (e.g. train.lr=3e-4 model.layers=4)")
    train.set_defaults(func=cmd_train)

    pt = sub.add_parser(
        "pretrain",
        parents=[common],
        help="pretrain the encoder on unlabelled texts (masked-language modelling): a backbone for train",
    )
    pt.add_argument("--config", help="YAML config file (its task, if any, must be masked_lm)")
    pt.add_argument("--resume", metavar="RUN_DIR", help="continue a pretraining run from its latest checkpoint")
    _add_overrides(pt, "config overrides, values parsed as YAML (e.g. data.path=texts.txt train.max_steps=2000)")
    pt.set_defaults(func=cmd_pretrain)

    ev = sub.add_parser("eval", parents=[common], help="evaluate a run or model on its test split or a file")
    ev.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    ev.add_argument("--data", metavar="FILE", help="a labelled CSV/TSV/JSONL file (default: the run's test split)")
    ev.add_argument("--text-column", help="text column of --data (default: the run's, else 'text')")
    ev.add_argument("--label-column", help="label column of --data (default: the run's, else 'label')")
    ev.add_argument("--encoding", help="encoding of --data (default: the run's, else utf-8)")
    ev.add_argument("--format", help="format of --data: csv, tsv or jsonl (default: from its suffix)")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument(
        "--model",
        metavar="MODEL_DIR",
        help="evaluate this model directory instead of the run's own model, on the run's test split "
        "(e.g. an export: attncoach export RUN --onnx --out DIR)",
    )
    _add_runtime_option(ev)
    _add_subnet_options(ev)
    ev.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", parents=[common], help="predict labels for texts (or image files)")
    pr.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    pr.add_argument("texts", nargs="*", default=[], help="texts to classify (an image model: image files)")
    pr.add_argument(
        "--input",
        metavar="FILE",
        help="a .txt file (one text per line) or CSV/TSV/JSONL with a text column; an image model: a folder "
        "of images or a .txt file with one image path per line",
    )
    pr.add_argument("--output", metavar="FILE.jsonl", help="write one JSON line per text here (default: stdout)")
    _add_overwrite_option(pr, "--output")
    pr.add_argument("--no-text", action="store_true", help="leave the input text out of each output line")
    pr.add_argument("--text-column", default="text", help="text column of a CSV/TSV/JSONL --input (default: text)")
    pr.add_argument("--encoding", default="utf-8", help="encoding of --input (default: utf-8)")
    pr.add_argument("--batch-size", type=int, default=256, help="texts per forward pass (default: 256)")
    _add_runtime_option(pr)
    _add_subnet_options(pr)
    pr.set_defaults(func=cmd_predict)

    rc = sub.add_parser("recommend", parents=[common], help="recommend the next items for users or histories")
    rc.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    whom = rc.add_mutually_exclusive_group(required=True)
    whom.add_argument("--user", nargs="+", metavar="U", help="users the model knows (their whole history is used)")
    whom.add_argument("--history", nargs="+", metavar='"I1 I2 ..."', help="item histories, oldest item first")
    rc.add_argument("-k", type=int, default=10, help="items per user or history (default: 10)")
    rc.add_argument("--include-seen", action="store_true", help="allow items already in the history")
    _add_runtime_option(rc)
    _add_subnet_options(rc)
    rc.set_defaults(func=cmd_recommend)

    tr = sub.add_parser("translate", parents=[common], help="translate sentences with a translation model")
    tr.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    tr.add_argument("texts", nargs="*", default=[], help="sentences to translate")
    tr.add_argument(
        "--input", metavar="FILE", help="a .txt file (one sentence per line) or CSV/TSV/JSONL with a text column"
    )
    tr.add_argument(
        "--output", metavar="FILE", help="one translation per line (JSON lines with the source for a .jsonl file)"
    )
    _add_overwrite_option(tr, "--output")
    tr.add_argument("--text-column", default="text", help="text column of a CSV/TSV/JSONL --input (default: text)")
    tr.add_argument("--encoding", default="utf-8", help="encoding of --input (default: utf-8)")
    tr.add_argument("--beam", type=int, help="beam size, 1 = greedy (default: the model's, from its training config)")
    tr.add_argument("--length-penalty", type=float, help="alpha of the beam's length penalty (default: the model's)")
    tr.add_argument("--batch-size", type=int, default=32, help="sentences translated together (default: 32)")
    _add_subnet_options(tr)
    tr.set_defaults(func=cmd_translate)
    ex = sub.add_parser(
        "export", parents=[common], help="save a model or a sub-net standalone: smaller, int8, ONNX, or a family"
    )
    ex.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    ex.add_argument("--out", metavar="DIR", required=True, help="new or empty folder for the exported model")
    _add_subnet_options(ex)
    ex.add_argument(
        "--quantize", metavar="int8", help="int8: int8 weights and embedding tables, dynamic int8 Linear layers"
    )
    ex.add_argument(
        "--onnx", action="store_true", help="also write model.onnx for ONNX Runtime (predict --runtime onnx)"
    )
    ex.add_argument(
        "--family",
        action="store_true",
        help="export several sub-nets with measured latencies and parity (for attncoach serve)",
    )
    ex.add_argument("--widths", type=float, nargs="+", metavar="W", help="--family: these widths (default: trained)")
    ex.add_argument("--depths", type=float, nargs="+", metavar="D", help="--family: these depths (default: trained)")
    ex.add_argument("--threads", type=int, help="torch threads while measuring a family (default: torch's default)")
    ex.set_defaults(func=cmd_export)
    _add_subnets_and_search(sub, common)

    ex = sub.add_parser(
        "examples", parents=[common], help="what a run's learning record says about its training examples"
    )
    ex.add_argument("path", metavar="RUN")
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--hardest", type=int, metavar="N", help="the N examples with the highest mean loss")
    which.add_argument(
        "--suspect",
        type=int,
        metavar="N",
        help="the N that look mislabelled, most suspect first (by --by); with injected label noise, "
        "also precision@N, recall@N and average precision against the flips",
    )
    which.add_argument(
        "--unforgettable", type=int, metavar="N", help="the N learned once and never forgotten, longest streak first"
    )
    ex.add_argument(
        "--by",
        metavar="SCORE",
        help="--suspect: the suspicion score: loss (the default: mean loss), aum (area under the margin), p_label, "
        "forgetting or rank_mean (README: Noisy labels)",
    )
    ex.add_argument(
        "--json",
        action="store_true",
        help='print JSON (one object per line for a ranking; a last {"detection": ...} line with injected noise)',
    )
    ex.set_defaults(func=cmd_examples)
    _add_clean(sub, common)
    _add_robustness(sub, common)
    _add_serve(sub, common)
    _add_report_and_attention(sub, common)
    _add_tune(sub, common)
    _add_active(sub, common)
    return parser


def _add_overrides(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The ``section.key=value ...`` positional arguments of ``train`` and ``tune``."""
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help=help_text)


def _add_overwrite_option(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace the file {flag} names if it exists")


def _add_subnet_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=float, help="run a sub-net: this fraction of heads and FFN neurons, (0, 1]")
    parser.add_argument("--depth", type=float, help="run a sub-net: this fraction of the layers, evenly spaced, (0, 1]")
    parser.add_argument("--subnet", metavar="FILE.json", help="run the sub-net described in this JSON file")


def _resolve_subnet(clf: Any, args: argparse.Namespace) -> Any:
    """The SubnetConfig that --width/--depth or --subnet name for ``clf``, or None without them.

    Widths and depths outside an elastic model's trained space are refused.
    """
    from attncoach.elastic.space import read_subnet, subnet_for

    by_size = args.width is not None or args.depth is not None
    if args.subnet and by_size:
        raise AttncoachError("give --subnet FILE or --width/--depth, not both")
    if not (args.subnet or by_size):
        return None
    if getattr(clf, "runtime", "torch") == "onnx":
        raise AttncoachError(
            "an ONNX graph is one fixed model: run sub-nets with --runtime torch, or export the sub-net "
            "(attncoach export --width W --depth D --onnx) and predict with that"
        )
    encoder = clf.model.encoder
    if args.subnet:
        return read_subnet(args.subnet, encoder)
    width = 1.0 if args.width is None else args.width
    depth = 1.0 if args.depth is None else args.depth
    subnet = subnet_for(encoder.config, width, depth)
    from attncoach.elastic.space import saved_space

    if saved_space(clf) is not None:
        clf.space.check(width, depth)
    return subnet


def _apply_subnet(clf: Any, args: argparse.Namespace) -> str | None:
    """Switch ``clf`` to the sub-net the options name; returns its description, or None."""
    subnet = _resolve_subnet(clf, args)
    if subnet is None:
        return None
    encoder = clf.model.encoder
    clf.model.set_subnet(subnet)
    active, total = encoder.num_parameters(active_only=True), encoder.num_parameters()
    description = f"sub-net {subnet} ({active:,} of {total:,} encoder parameters)"
    log.info(description)
    return str(subnet)


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        default="torch",
        help="torch (default), or onnx: the model's model.onnx in ONNX Runtime (written by attncoach export --onnx)",
    )


def _load_in_runtime(model_dir: Path, runtime: str, then: str) -> Any:
    """The model of ``model_dir`` in ``runtime``; an ONNX runtime without an ONNX graph says how to export
    one and ``then`` what to run with it."""
    from attncoach.models.saved import ONNX_FILE, check_runtime, load_model

    if check_runtime(runtime) == "onnx" and not (model_dir / ONNX_FILE).is_file():
        raise AttncoachError(
            f"--runtime onnx: {model_dir} has no ONNX graph ({ONNX_FILE}); export one with "
            f"attncoach export {model_dir} --onnx --out DIR, then {then}"
        )
    return load_model(model_dir, runtime=runtime)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    quiet = getattr(args, "quiet", False)
    args.quiet = quiet
    _setup_logging(quiet)
    try:
        with _sigterm_raises_terminated():
            return args.func(args) or 0
    except AttncoachError as exc:
        return _fail(f"error: {exc}", 2, debug)
    except BrokenPipeError:  # e.g. `attncoach predict ... | head`: the reader left, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, not a traceback
        hint = "" if debug else " (rerun with --debug for the traceback)"
        return _fail(f"error: internal error {type(exc).__name__}: {exc}{hint}", 1, debug)


def _fail(line: str, status: int, debug: bool) -> int:
    """Print the error line (after the traceback of the exception being handled, with --debug)."""
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
    return status


@contextlib.contextmanager
def _sigterm_raises_terminated() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` (the previous handler is restored after).

    A training run then stops like on Ctrl-C: between checkpoints, which are written atomically,
    so ``--resume`` continues from the last one.
    """
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    from attncoach.progress import console

    if console().is_terminal:  # above a live progress bar
        handler: logging.Handler = RichHandler(
            console=console(), show_time=False, show_level=False, show_path=False, markup=False, rich_tracebacks=False
        )
    else:  # plain, unwrapped lines for logs and pipes
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


# ---------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """Train a new run, or resume one; under torchrun every process runs this, data-parallel."""
    from attncoach.rundir import RunDir
    from attncoach.train.distributed import check_batch_splits, data_parallel, rank_from_env, world_size_from_env
    from attncoach.train.recipe import Recipe
    from attncoach.train.settings import claim_output_dir
    from attncoach.train.settings import load_run_config as load_config

    if args.resume:
        if args.config or args.overrides:
            raise AttncoachError("--resume continues a run with its saved config; drop --config and overrides")
        run = RunDir.existing(args.resume)
        cfg = load_config(run.config)
        if run.metrics.is_file():
            if rank_from_env() != 0:
                return 0  # rank 0 of a torchrun run says it
            log.info("run %s has already finished (metrics.json exists); nothing to do", run.path)
            _print_summary(json.loads(run.metrics.read_text(encoding="utf-8")), run.path, args.quiet)
            return 0
    else:
        cfg = load_config(args.config, args.overrides)
    check_batch_splits(cfg.train.batch_size, world_size_from_env())  # before any process group or file
    with data_parallel(cfg.train.device) as world:
        if not args.resume:  # rank 0 claims the run directory for every rank
            cfg.output_dir = world.from_main(lambda: claim_output_dir(cfg))
            run = RunDir(cfg.output_dir)
        metrics = Recipe(cfg, run, resume=bool(args.resume), quiet=args.quiet, world=world).run()
        if world.is_main:
            _print_summary(metrics, run.path, args.quiet)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """``attncoach train`` with task masked_lm: its model directory is a backbone (``model.backbone=RUN``)."""
    from attncoach.config import configured_task
    from attncoach.rundir import RunDir
    from attncoach.train.settings import load_run_config

    if args.resume:
        task = load_run_config(RunDir.existing(args.resume).config).task
        where = f"run {args.resume}"
    else:
        task = configured_task(args.config, args.overrides)
        where = "the config"
        args.overrides = ["task=masked_lm", *args.overrides]
    if task not in (None, "masked_lm"):
        raise AttncoachError(
            f"attncoach pretrain trains task masked_lm, and {where} names task {task}: use attncoach train for it"
        )
    return cmd_train(args)


_SHOWN = {"macro_f1": "macro-F1"}  # how a metric is named in printed lines (else its key)


def _print_summary(metrics: dict[str, Any], path: Path, quiet: bool) -> None:
    from attncoach.tasks import TASKS

    test = metrics["test"]
    task = TASKS.get(metrics.get("task", "text_classification"), TASKS["text_classification"])
    shown = "  ".join(f"{_SHOWN.get(k, k)} {test[k]:.4f}" for k in task.tracked if k in test)
    line = f"test {shown}  ({metrics['steps']} steps, {metrics['train_seconds']:.0f} s)  -> {path}"
    print(line if not quiet else json.dumps({f"test_{task.primary}": test[task.primary], "run": str(path)}))


def _run_data(run: Any, model_dir: Path, predictor: Any) -> tuple[Any, Any, Any]:
    """The run's config, its task, and its data encoded as the model was (splits rebuilt from the config).

    A data source that changed since the run was created is refused (its splits would hold other rows).
    """
    from attncoach.data.fingerprint import check_sources
    from attncoach.tasks import TASKS
    from attncoach.train.settings import load_run_config as load_config

    cfg = load_config(run.config)
    if cfg.task != predictor.task:
        raise AttncoachError(f"{model_dir} holds a {predictor.task} model but run {run.path} trains {cfg.task}")
    task = TASKS[cfg.task](label_smoothing=cfg.train.label_smoothing)
    hint = "put the original file back, or score another file with attncoach eval RUN --data FILE"
    check_sources(run, cfg.data, task.corpus, hint=hint)
    return cfg, task, task.build(cfg, model_dir=model_dir)


# ---------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from attncoach.data.prepare import encode_examples
    from attncoach.data.sources import read_examples
    from attncoach.rundir import RunDir, resolve_model_dir
    from attncoach.tasks.text_classification import evaluate_ids
    from attncoach.train.settings import load_run_config as load_config

    model_dir = resolve_model_dir(args.path)
    run = RunDir(model_dir.parent)
    if args.model is not None:  # another model (an export) on this run's data
        if not run.is_run():
            raise AttncoachError(f"--model evaluates a model on a run's test split; {args.path} is not a run")
        model_dir = resolve_model_dir(args.model)
    clf = _load_in_runtime(model_dir, args.runtime, f"attncoach eval {run.path} --model DIR --runtime onnx")
    subnet = _apply_subnet(clf, args)
    if args.data:
        if clf.task != "text_classification":
            raise AttncoachError(f"--data scores a labelled text file; {model_dir} holds a {clf.task} model")
        cfg = load_config(run.config) if run.is_run() else None
        data_cfg = _eval_data_config(cfg, args)
        try:
            examples = read_examples(data_cfg)
        except AttncoachError as exc:
            raise AttncoachError(_with_eval_flags(str(exc))) from None
        split = encode_examples(examples, clf.tokenizer, clf.labels, clf.max_length, source=args.data)
        source = args.data
        metrics = evaluate_ids(
            clf.model, split.ids, split.labels, clf.labels, 256, clf.device, temperature=clf.temperature
        )
    else:
        if not run.is_run():
            raise AttncoachError(
                f"{model_dir} is a bare model directory: give --data FILE to evaluate it, "
                "or evaluate it on its run's test split with attncoach eval RUN --model DIR"
            )
        _, task, data = _run_data(run, model_dir, clf)
        test = data.splits["test"]
        if clf.task == "text_classification":  # its ECE, raw and with the model's calibration
            metrics = evaluate_ids(
                clf.model, test.ids, test.labels, clf.labels, 256, clf.device, temperature=clf.temperature
            )
        elif clf.task == "image_classification":  # the same, for images
            from attncoach.tasks.image_classification import evaluate_images

            metrics = evaluate_images(clf.model, test, clf.labels, temperature=clf.temperature)
        else:
            metrics = task.evaluate(clf.model, test, data)
        source = f"test split of {run.path}"
    if subnet is not None:
        metrics["subnet"] = subnet
        metrics["encoder_parameters"] = clf.model.encoder.num_parameters(active_only=True)
        source += f", {subnet}"
    if args.json:
        print(_json_text(metrics))
    elif "per_class" in metrics:
        _print_metrics(metrics, source)
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{source}: {metrics['n']} cases, {shown}")
    return 0


def _eval_data_config(cfg: Any, args: argparse.Namespace) -> Any:
    from attncoach.config import DataConfig

    base = cfg.data if cfg is not None else DataConfig()
    return DataConfig(
        path=args.data,
        text_column=args.text_column or base.text_column,
        label_column=args.label_column or base.label_column,
        encoding=args.encoding or base.encoding,
        format=args.format,
    )


# The config keys that eval's --data reading names in its messages, and eval's flags that set them.
_EVAL_FLAGS = {
    "data.path": "--data",
    "data.text_column": "--text-column",
    "data.label_column": "--label-column",
    "data.encoding": "--encoding",
    "data.format": "--format",
    "data.group_column": "--group-column",
}


def _with_eval_flags(message: str) -> str:
    """A data reader's message with the config keys it names replaced by eval's flags."""
    return re.sub(r"\bdata\.[a-z_]+\b", lambda m: _EVAL_FLAGS.get(m.group(), m.group()), message)


def _absent_note(metrics: dict[str, Any]) -> str:
    """`` over 3 of 4 classes (absent here: x)`` when labels of the model have no example in the split."""
    absent = metrics.get("absent_classes") or []
    if not absent:
        return ""
    averaged = len(metrics.get("macro_classes", []))
    return f" over {averaged} of {averaged + len(absent)} classes (absent here: {', '.join(map(str, absent))})"


def _ece_note(metrics: dict[str, Any]) -> str:
    """``, ECE 0.0812 (calibrated 0.0231, temperature 1.42)``: the expected calibration error of the probabilities."""
    if "ece" not in metrics:
        return ""
    if "ece_calibrated" not in metrics:
        return f", ECE {metrics['ece']:.4f} (uncalibrated)"
    return f", ECE {metrics['ece']:.4f} (calibrated {metrics['ece_calibrated']:.4f}, temperature {metrics['temperature']:g})"


def _json_text(data: Any) -> str:
    """Indented JSON with a non-finite number (a diverged sub-net's loss) as null, never ``NaN``."""
    from attncoach.atomicfile import json_safe

    return json.dumps(json_safe(data), indent=2, allow_nan=False)


def _print_metrics(metrics: dict[str, Any], source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{source}: {metrics['n']} examples, accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f}{_absent_note(metrics)}{_ece_note(metrics)}"
    )
    for col in ("label", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    Console().print(table)


# ---------------------------------------------------------------- predict
_CHUNK_BATCHES = 8  # --input is read this many batches at a time: texts of similar length share a batch


def cmd_predict(args: argparse.Namespace) -> int:
    from attncoach.data.stream import TextStream
    from attncoach.models.saved import check_runtime, load_model, read_model_config
    from attncoach.rundir import resolve_model_dir

    if bool(args.texts) == bool(args.input):
        raise AttncoachError("give either texts to classify or --input FILE (not both, not neither)")
    check_runtime(args.runtime)
    if args.batch_size < 1:
        raise AttncoachError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = _checked_output(args.output, "--output", args.overwrite, inputs=[args.input] if args.input else [])
    model_dir = resolve_model_dir(args.path)
    if read_model_config(model_dir)["task"] == "image_classification":
        return _predict_images(model_dir, args, out)
    stream = TextStream(Path(args.input), args.encoding, args.text_column) if args.input else None
    clf = load_model(model_dir, runtime=args.runtime)
    if clf.task != "text_classification":
        raise AttncoachError(f"predict classifies texts; {_other_use(clf.task)}")
    _apply_subnet(clf, args)
    if clf.temperature is not None:
        log.info("probabilities calibrated: softmax(logits / %g), the temperature fitted on val", clf.temperature)
    count = _write_predictions(clf, stream if stream is not None else list(args.texts), out, args, stream)
    if out is not None:
        log.info("wrote %d predictions to %s", count, out)
    return 0


# The command that uses a model of each task, for the line that refuses it elsewhere.
_COMMAND_OF_TASK = {
    "text_classification": "predict",
    "image_classification": "predict",
    "next_item": "recommend",
    "translation": "translate",
}


def _other_use(task: str) -> str:
    """What a model of ``task`` is for, ending the line that refuses it: ``this is a next_item model (use ...)``."""
    from attncoach.models.saved import PRETRAINED_ENCODER_USE

    if task == "masked_lm":
        return PRETRAINED_ENCODER_USE
    return f"this is a {task} model (use attncoach {_COMMAND_OF_TASK.get(task, 'eval')})"


def _predict_images(model_dir: Path, args: argparse.Namespace, out: Path | None) -> int:
    """``predict`` with an image model: one JSON line per image file, ``{"image", "label", "probability",
    "probabilities"}``; every image is read and checked before any line is written."""
    from attncoach.atomicfile import atomic_text_writer
    from attncoach.data.images import IMAGE_SUFFIXES

    clf = _load_in_runtime(model_dir, args.runtime, "attncoach predict DIR IMAGE --runtime onnx")
    _apply_subnet(clf, args)
    paths = [Path(p) for p in args.texts]
    if args.input:
        source = Path(args.input)
        if source.is_dir():  # a folder of images, or an image folder of class sub-folders
            paths = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths = [Path(line.strip()) for line in _read_lines(source) if line.strip()]
        if not paths:
            raise AttncoachError(f"--input {source} names no image (PNG or JPEG)")
    pixels = clf.read(paths)
    results = clf.predict(pixels, batch_size=args.batch_size)
    rows = [res if args.no_text else {"image": str(path), **res} for path, res in zip(paths, results)]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if out is None:
        sys.stdout.write(text)
    else:
        with atomic_text_writer(out) as sink:
            sink.write(text)
        log.info("wrote %d predictions to %s", len(rows), out)
    return 0


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AttncoachError(f"input file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttncoachError(f"cannot read {path} as a list of image paths ({type(exc).__name__})") from None


def _write_predictions(clf: Any, texts: Any, out: Path | None, args: argparse.Namespace, stream: Any) -> int:
    """Predict ``texts`` (a list, or a stream read lazily) chunk by chunk, writing one JSON line per text
    to ``out`` (atomically: replaced only when every text is done) or to stdout; returns how many."""
    from attncoach.atomicfile import atomic_text_writer
    from attncoach.data.stream import batched
    from attncoach.progress import StreamProgress

    count = 0
    with contextlib.ExitStack() as stack:
        sink = sys.stdout if out is None else stack.enter_context(atomic_text_writer(out))
        progress = None
        if stream is not None:
            progress = stack.enter_context(StreamProgress(stream.size, "predict", "texts", enabled=not args.quiet))
        for chunk in batched(texts, args.batch_size * _CHUNK_BATCHES):
            results = clf.predict(chunk, batch_size=args.batch_size)
            rows = results if args.no_text else ({"text": text, **res} for text, res in zip(chunk, results))
            sink.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            count += len(chunk)
            if progress is not None:
                progress.update(stream.position, count)
        if count == 0:
            raise AttncoachError(f"input file {args.input} has no texts")
    return count


def _checked_output(given: str | None, flag: str, overwrite: bool, inputs: Sequence[str] = ()) -> Path | None:
    """The path of an output file, checked before any work: its folder exists, it is none of
    ``inputs`` (after resolving links and relative paths), and it exists only with ``--overwrite``."""
    if given is None:
        return None
    path = Path(given)
    if not path.parent.is_dir():
        raise AttncoachError(f"output folder does not exist: {path.parent}")
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise AttncoachError(f"{flag} {path} is the input file {source}: choose another file to write")
    if path.is_dir():
        raise AttncoachError(f"{flag} {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise AttncoachError(f"{flag} {path} already exists; add --overwrite to replace it")
    return path


# ---------------------------------------------------------------- recommend
def cmd_recommend(args: argparse.Namespace) -> int:
    from attncoach.rundir import resolve_model_dir

    rec = _load_in_runtime(resolve_model_dir(args.path), args.runtime, "attncoach recommend DIR --runtime onnx")
    if rec.task != "next_item":
        raise AttncoachError(f"recommend needs a next_item model; {_other_use(rec.task)}")
    _apply_subnet(rec, args)
    exclude = not args.include_seen
    if args.user:
        results = rec.recommend_many(users=args.user, k=args.k, exclude_seen=exclude)
        for user, items in zip(args.user, results):
            print(json.dumps({"user": user, "items": items}, ensure_ascii=False))
    else:
        histories = [h.split() for h in args.history]
        results = rec.recommend_many(histories=histories, k=args.k, exclude_seen=exclude)
        for history, items in zip(histories, results):
            print(json.dumps({"history": history, "items": items}, ensure_ascii=False))
    return 0


# ---------------------------------------------------------------- translate
def cmd_translate(args: argparse.Namespace) -> int:
    from attncoach.atomicfile import atomic_text_writer
    from attncoach.data.stream import TextStream, batched
    from attncoach.models.saved import load_model
    from attncoach.progress import StreamProgress
    from attncoach.rundir import resolve_model_dir

    if bool(args.texts) == bool(args.input):
        raise AttncoachError("give either sentences to translate or --input FILE (not both, not neither)")
    if args.beam is not None and args.beam < 1:
        raise AttncoachError(f"--beam must be at least 1 (1 = greedy), got {args.beam}")
    if args.length_penalty is not None and not args.length_penalty >= 0:
        raise AttncoachError(f"--length-penalty must be non-negative, got {args.length_penalty}")
    if args.batch_size < 1:
        raise AttncoachError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = _checked_output(args.output, "--output", args.overwrite, inputs=[args.input] if args.input else [])
    stream = TextStream(Path(args.input), args.encoding, args.text_column) if args.input else None
    model = load_model(resolve_model_dir(args.path))
    if model.task != "translation":
        raise AttncoachError(f"translate needs a translation model; {_other_use(model.task)}")
    _apply_subnet(model, args)
    as_json = out is not None and out.suffix == ".jsonl"
    count = 0
    with contextlib.ExitStack() as stack:
        sink = sys.stdout if out is None else stack.enter_context(atomic_text_writer(out))
        progress = None
        if stream is not None:
            progress = stack.enter_context(
                StreamProgress(stream.size, "translate", "sentences", enabled=not args.quiet)
            )
        for chunk in batched(stream if stream is not None else list(args.texts), args.batch_size * _CHUNK_BATCHES):
            done = model.translate(chunk, args.beam, args.length_penalty, args.batch_size)
            if as_json:
                rows = (json.dumps({"text": a, "translation": b}, ensure_ascii=False) for a, b in zip(chunk, done))
            else:
                rows = (" ".join(b.splitlines()) for b in done)
            sink.write("".join(row + "\n" for row in rows))
            count += len(chunk)
            if progress is not None:
                progress.update(stream.position, count)
        if count == 0:
            raise AttncoachError(f"input file {args.input} has no sentences")
    if out is not None:
        log.info("wrote %d translations to %s", count, out)
    return 0


# ---------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from attncoach.elastic.export import check_export_dir, check_quantization, export_model_dir
    from attncoach.models.encoder import SubnetConfig
    from attncoach.models.onnx_graph import require_onnx
    from attncoach.models.saved import PRETRAINED_ENCODER_USE, load_model
    from attncoach.rundir import resolve_model_dir

    check_quantization(args.quantize)
    by_subnet = args.subnet is not None or args.width is not None or args.depth is not None
    _check_family_options(args, by_subnet)
    if not (by_subnet or args.quantize or args.onnx or args.family):
        raise AttncoachError(
            "export needs a sub-net (--width/--depth or --subnet), --quantize int8, --onnx or --family"
        )
    if args.onnx:
        require_onnx()
    out = check_export_dir(args.out)
    _set_threads(args.threads)
    model_dir = resolve_model_dir(args.path)
    source = load_model(model_dir)
    if source.quantization is not None:
        raise AttncoachError(
            f"{model_dir} is already an {source.quantization} model: export from the float32 model it came from"
        )
    if source.task == "masked_lm" and (args.quantize or args.onnx or args.family):
        raise AttncoachError(
            f"--quantize, --onnx and --family make models to serve; {PRETRAINED_ENCODER_USE} "
            "(export --width/--depth writes a smaller one)"
        )
    if args.family and source.task == "image_classification":
        raise AttncoachError(
            "--family exports members for attncoach serve, which does not serve image models: "
            "export each sub-net with --width/--depth instead"
        )
    converts = bool(args.quantize or args.onnx or args.family)
    split, run, skipped = _parity_split(model_dir, source) if converts else (None, None, None)
    if args.family:
        return _export_family(args, model_dir, source, out, split, run, skipped)
    subnet = _resolve_subnet(source, args) or SubnetConfig()
    summary = export_model_dir(
        model_dir, subnet, out, _subnet_options_text(args) or None, quantize=args.quantize, onnx=args.onnx
    )
    print(_export_line(summary, by_subnet))
    if converts:
        source.model.set_subnet(subnet)
        _report_parity(source, out, split, skipped, args.onnx)
    return 0


def _check_family_options(args: argparse.Namespace, by_subnet: bool) -> None:
    if (args.widths or args.depths) and not args.family:
        raise AttncoachError("--widths and --depths choose the members of --family")
    if args.family and by_subnet:
        raise AttncoachError(
            "--family exports a grid of sub-nets: give --widths/--depths, not --width/--depth/--subnet"
        )
    if args.threads is not None and not args.family:
        raise AttncoachError("--threads sets the torch threads --family measures latency with")


def _export_line(summary: Any, by_subnet: bool) -> str:
    what = f"sub-net {summary.subnet}" if by_subnet else "the full model"
    kind = f" as {summary.quantization}" if summary.quantization else ""
    graph = "" if summary.onnx_file_bytes is None else f" (+ model.onnx {summary.onnx_file_bytes / 1e6:.2f} MB)"
    return (
        f"exported {what}{kind}: {summary.source_parameters:,} -> {summary.parameters:,} parameters, "
        f"{summary.source_file_bytes / 1e6:.2f} -> {summary.file_bytes / 1e6:.2f} MB{graph} -> {summary.out_dir}"
    )


def _parity_split(model_dir: Path, source: Any) -> tuple[Any, Any, str | None]:
    """The run's test split to check parity on, its run, and why parity is skipped (or None)."""
    from attncoach.rundir import RunDir

    run = RunDir(model_dir.parent)
    if not run.is_run():
        return None, None, f"{model_dir} is a bare model directory: there is no run, so no test split to compare on"
    _, _, data = _run_data(run, model_dir, source)
    test = data.splits["test"]
    if len(test) == 0:
        return None, run, f"run {run.path} has an empty test split"
    return test, run, None


def _report_parity(reference: Any, out: Path, split: Any, skipped: str | None, onnx: bool) -> None:
    """Check the exported model against ``reference`` (switched to its sub-net); print and write parity.json."""
    from attncoach.atomicfile import atomic_write_json
    from attncoach.models.saved import load_model
    from attncoach.serve.parity import parity, parity_lines

    if split is None:
        atomic_write_json(out / "parity.json", {"skipped": skipped})
        print(f"parity skipped: {skipped}")
        return
    exported = [load_model(out, runtime=runtime) for runtime in (("torch", "onnx") if onnx else ("torch",))]
    report = parity(reference, exported, split)
    atomic_write_json(out / "parity.json", report)
    print("\n".join(parity_lines(report)))


def _export_family(
    args: argparse.Namespace, model_dir: Path, source: Any, out: Path, split: Any, run: Any, skipped: str | None
) -> int:
    from attncoach.serve.family import export_family, family_members

    members = family_members(source, args.widths, args.depths)
    log.info("exporting %d member(s): %s", len(members), ", ".join(m.name for m in members))
    manifest = export_family(
        model_dir, out, members, args.quantize, args.onnx, split, None if run is None else str(run.path)
    )
    _print_family(manifest, out, skipped)
    return 0


def _print_family(manifest: dict[str, Any], out: Path, skipped: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    sizes = manifest["batch_sizes"]
    table = Table(
        title=f"family {out}: {len(manifest['members'])} members, latency with {manifest['threads']} torch thread(s)"
        + ("" if skipped else f", parity on the {manifest['split']} split of {manifest['run']}")
    )
    first_parity = next((m["parity"] for m in manifest["members"] if m["parity"]), None)
    metric = first_parity["metric"] if first_parity else None
    columns = ["member", "runtime", "params", *(f"b{b} ms" for b in sizes), "MB"]
    if metric:
        columns += ["max |Δ|", "agree", f"{_SHOWN.get(metric, metric)} (fp32)"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("member", "runtime") else "right")
    for m in manifest["members"]:
        row = [m["name"], m["runtime"], f"{m['parameters']:,}", *(f"{m['latency_ms'][str(b)]:.2f}" for b in sizes)]
        served_file = "model.onnx" if m["runtime"] == "onnx" else "model.safetensors"  # what the runtime loads
        row.append(f"{m['file_bytes'][served_file] / 1e6:.2f}")
        if metric and m["parity"]:
            entry, reference = m["parity"]["exported"][0], m["parity"]["reference"][metric]
            agree = entry.get("label_agreement", entry.get("top10_overlap"))
            row += [f"{entry['max_abs_diff']:.2g}", f"{100 * agree:.1f} %", f"{entry[metric]:.4f} ({reference:.4f})"]
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
    if skipped:
        print(f"parity skipped: {skipped}")


def _subnet_options_text(args: argparse.Namespace) -> str:
    """The sub-net options as the user gave them, e.g. ``--width 0.5 --depth 0.5``."""
    if args.subnet:
        return f"--subnet {args.subnet}"
    sizes = (("--width", args.width), ("--depth", args.depth))
    return " ".join(f"{flag} {value:g}" for flag, value in sizes if value is not None)


# ---------------------------------------------------------------- subnets and search
def _add_subnets_and_search(sub: Any, common: argparse.ArgumentParser) -> None:
    sn = sub.add_parser(
        "subnets", parents=[common], help="measure the sub-net grid of a run: val quality, latency, Pareto front"
    )
    sn.add_argument("path", metavar="RUN")
    sn.add_argument("--out", metavar="FILE.json", help="write the rows (with each sub-net) here")
    _add_overwrite_option(sn, "--out")
    sn.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 32],
        metavar="B",
        help="measure the latency at these batch sizes (default: 1 32)",
    )
    sn.add_argument("--threads", type=int, help="torch threads while measuring (default: torch's default)")
    sn.set_defaults(func=cmd_subnets)

    se = sub.add_parser(
        "search", parents=[common], help="find the best sub-net of a run under a latency and/or size budget"
    )
    se.add_argument("path", metavar="RUN")
    se.add_argument("--max-latency-ms", type=float, metavar="MS", help="budget: milliseconds per batch (measured)")
    se.add_argument("--batch", type=int, help="batch size of --max-latency-ms (default: 1)")
    se.add_argument("--max-params", type=float, metavar="N", help="budget: total active parameters")
    se.add_argument(
        "--out", metavar="FILE.json", help="write the chosen sub-net here (for eval/predict/export --subnet)"
    )
    _add_overwrite_option(se, "--out")
    se.add_argument("--seed", type=int, default=0, help="seed of the evolutionary search (default: 0)")
    se.add_argument("--threads", type=int, help="torch threads while measuring (default: torch's default)")
    se.add_argument("--json", action="store_true", help="print the result as JSON")
    se.set_defaults(func=cmd_search)


def cmd_subnets(args: argparse.Namespace) -> int:
    import torch

    from attncoach.atomicfile import atomic_write_json
    from attncoach.elastic.measure import evaluate_subnets, pareto_front
    from attncoach.elastic.search import search_space, uniform_grid

    out = _checked_output(args.out, "--out", args.overwrite)
    if any(size < 1 for size in args.batch_sizes):
        raise AttncoachError(f"--batch-sizes must be at least 1, got {args.batch_sizes}")
    batch_sizes = sorted(set(args.batch_sizes))
    _set_threads(args.threads)
    clf, judge, run = _load_run_and_judge(args.path)
    candidates = uniform_grid(search_space(clf), clf.model.encoder.config)
    rows = evaluate_subnets(judge, candidates, batch_sizes)
    latency_key = f"latency_ms_b{batch_sizes[-1]}"
    for row, on_front in zip(rows, pareto_front(rows, quality=judge.primary, costs=(latency_key, "parameters"))):
        row["pareto"] = on_front
    conditions = {
        "run": str(run.path),
        "split": "val",
        "examples": len(judge.split),
        "metrics": list(judge.metrics),
        "threads": torch.get_num_threads(),
        "batch_sizes": batch_sizes,
        "pareto_costs": [latency_key, "parameters"],
    }
    _print_subnet_rows(rows, batch_sizes, conditions)
    if out is not None:
        atomic_write_json(out, {**conditions, "rows": rows})
        log.info("wrote %d sub-nets to %s", len(rows), out)
    return 0


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        if threads < 1:
            raise AttncoachError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def _load_run_and_judge(path: str) -> tuple[Any, Any, Any]:
    """The run's model and the judge of its sub-nets on the val split; a bare model directory is refused."""
    from attncoach.elastic.measure import Judge
    from attncoach.models.saved import load_model
    from attncoach.rundir import RunDir, resolve_model_dir

    given = Path(path)
    if (given / "model_config.json").is_file() and not RunDir(given).is_run():
        raise AttncoachError(
            f"{given} is a bare model directory: give its run directory (sub-nets are scored on the run's val split)"
        )
    run = RunDir.existing(given)
    model_dir = resolve_model_dir(run.path)
    clf = load_model(model_dir)
    _, _, data = _run_data(run, model_dir, clf)
    val = data.splits["val"]
    if len(val) == 0:
        raise AttncoachError(f"run {run.path} has an empty val split: there is nothing to score sub-nets on")
    return clf, Judge.of(clf, val, data), run


def _print_subnet_rows(rows: list[dict[str, Any]], batch_sizes: list[int], conditions: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"sub-nets of {conditions['run']}: val split ({conditions['examples']} examples), "
        f"{conditions['threads']} torch thread(s)"
    )
    metrics = conditions["metrics"]
    columns = [
        "sub-net",
        "layers",
        "heads/layer",
        "ffn/layer",
        "params",
        *(f"b{b} ms" for b in batch_sizes),
        *(f"val {_SHOWN.get(k, k)}" for k in metrics),
        "Pareto",
    ]
    for col in columns:
        table.add_column(col, justify="left" if col == "sub-net" else "right")
    for row in rows:
        latencies = [f"{row[f'latency_ms_b{b}']:.2f}" for b in batch_sizes]
        per_layer = [",".join(map(str, row[key])) for key in ("heads_per_layer", "ffn_per_layer")]
        table.add_row(
            row["name"],
            str(row["layers"]),
            *per_layer,
            f"{row['parameters']:,}",
            *latencies,
            *(f"{row[k]:.4f}" for k in metrics),
            "✓" if row["pareto"] else "",
        )
    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)


def cmd_search(args: argparse.Namespace) -> int:
    from attncoach.atomicfile import atomic_write_json
    from attncoach.elastic.search import Budget, search, search_space

    if args.max_latency_ms is None and args.max_params is None:
        raise AttncoachError("give a budget: --max-latency-ms MS, --max-params N, or both")
    if args.batch is not None and args.max_latency_ms is None:
        raise AttncoachError("--batch sets the batch size of --max-latency-ms; it does not apply to --max-params")
    if args.max_params is not None and not (args.max_params > 0 and args.max_params.is_integer()):
        raise AttncoachError(f"--max-params must be a positive whole number, got {args.max_params:g}")
    budget = Budget(
        max_latency_ms=args.max_latency_ms,
        batch=1 if args.batch is None else args.batch,
        max_params=None if args.max_params is None else int(args.max_params),
    )
    out = _checked_output(args.out, "--out", args.overwrite)
    _set_threads(args.threads)
    clf, judge, _ = _load_run_and_judge(args.path)
    result = search(judge, budget, search_space(clf), seed=args.seed)
    result["metrics"] = list(judge.metrics)
    if out is not None:
        atomic_write_json(out, result["subnet"])  # exactly what read_subnet (--subnet FILE) reads
        log.info("wrote the sub-net to %s", out)
    if args.json:
        print(_json_text(result))
    else:
        _print_search_result(result)
    return 0


def _print_search_result(result: dict[str, Any]) -> None:
    budget = result["budget"]
    batch = budget["batch"]
    print(
        f"best sub-net within {_budget_text(budget)} ({result['search']} search, "
        f"{result['candidates_evaluated']} candidates scored, {result['threads']} torch thread(s)):"
    )
    rows = [("chosen", result), ("width only", result["width_only"]), ("depth only", result["depth_only"])]
    for label, row in rows:
        if row is None:
            print(f"  {label:<10}  none within the budget")
            continue
        shown = "  ".join(f"{_SHOWN.get(k, k)} {row[k]:.4f}" for k in result["metrics"])
        print(
            f"  {label:<10}  {row['name']:<16} val {shown}  "
            f"{row['latency_ms']:.2f} ms at batch {batch} (predicted {row['predicted_latency_ms']:.2f})  "
            f"{row['parameters']:,} params"
        )
    print(f"  sub-net: {json.dumps(result['subnet'])}")


def _budget_text(budget: dict[str, Any]) -> str:
    from attncoach.elastic.search import Budget

    return str(Budget(**budget))


# ---------------------------------------------------------------- examples
def cmd_examples(args: argparse.Namespace) -> int:
    from attncoach.curriculum.mislabel import check_suspicion_score
    from attncoach.curriculum.record import RANKINGS, rank, read_examples_jsonl, summary
    from attncoach.rundir import RunDir

    run = RunDir.existing(args.path)
    chosen = [(how, getattr(args, how)) for how in RANKINGS if getattr(args, how) is not None]
    for how, n in chosen:
        if n < 1:
            raise AttncoachError(f"--{how} must be at least 1, got {n}")
    _check_has_record(run)
    rows = read_examples_jsonl(run.examples)
    if not chosen:
        counts = summary(rows)
        if args.json:
            print(json.dumps(counts, indent=2))
        else:
            _print_record_summary(counts, run.path)
        return 0
    how, n = chosen[0]
    if args.by is not None and how != "suspect":
        raise AttncoachError("--by ranks suspects: use it with --suspect N")
    check_suspicion_score(args.by)
    top = rank(rows, how, n, by=args.by)
    detection = _detection(run, rows, n, args.by) if how == "suspect" else None
    if args.json:
        for row in top:
            print(json.dumps(row, ensure_ascii=False))
        if detection is not None:
            print(json.dumps({"detection": detection}))
    else:
        _print_ranked_examples(top, how, run.path)
        if detection is not None:
            _print_detection(detection)
    return 0


def _detection(run: Any, rows: list[dict[str, Any]], k: int, by: str | None) -> dict[str, Any] | None:
    """The suspect ranking scored against the run's injected flips (label_noise.json), or None without them."""
    from attncoach.curriculum.mislabel import RecordColumns, detection_scores, suspect_order
    from attncoach.curriculum.record import default_score
    from attncoach.data.noise import read_label_noise

    noise = read_label_noise(run.path)
    if noise is None:
        return None
    by = by or default_score(rows)
    ranking = [rows[i]["index"] for i in suspect_order(RecordColumns.of_rows(rows), by)]
    return {
        "by": by,
        "noise": f"{noise['kind']} {noise['rate']:g}",
        **detection_scores(ranking, noise["flipped_index"], k),
    }


def _print_detection(d: dict[str, Any]) -> None:
    if not d["flipped"]:
        print("label_noise.json: no label was flipped in this run, so there is nothing to find")
        return
    print(
        f"against the {d['flipped']:,} injected flips ({d['noise']}), ranked by {d['by']}: "
        f"precision@{d['k']} {d['precision_at_k']:.3f}, recall@{d['k']} {d['recall_at_k']:.3f}, "
        f"R-precision {d['r_precision']:.3f}, average precision {d['average_precision']:.3f}"
    )


def _check_has_record(run: Any) -> None:
    """Refuse a run whose config turned the learning record off, saying so."""
    from attncoach.train.settings import load_run_config

    if not run.examples.is_file() and not load_run_config(run.config).curriculum.record:
        raise AttncoachError(f"run {run.path} kept no learning record (it was trained with curriculum.record: false)")


def _print_record_summary(counts: dict[str, Any], path: Path) -> None:
    n = max(1, counts["examples"])
    print(f"learning record of {path} ({counts['examples']:,} training examples):")
    print(f"  seen {counts['mean_times_seen']:.2f} times on average; never seen: {counts['never_seen']:,}")
    for key, text in (
        ("learned", "learned (answered right at least once)"),
        ("forgotten_at_least_once", "forgotten at least once"),
        ("never_learned", "never learned"),
        ("suspect", "suspect (negative area under the margin: another class preferred on average)"),
        ("unforgettable", "unforgettable (right ever since first learned)"),
    ):
        print(f"  {text}: {counts[key]:,} ({100 * counts[key] / n:.1f} %)")
    if "boxes" in counts:
        print("  Leitner boxes: " + ", ".join(f"box {b}: {c:,}" for b, c in counts["boxes"].items()))
    print("  list them with --hardest N, --suspect N or --unforgettable N")


def _print_ranked_examples(rows: list[dict[str, Any]], how: str, path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print(f"no {how} examples in the learning record of {path}")
        return
    titles = {
        "hardest": "hardest (highest mean loss)",
        "suspect": "suspect: most likely mislabelled (highest suspicion)",
        "unforgettable": "unforgettable: never forgotten once learned",
    }
    table = Table(title=f"{titles[how]} — {path}")
    columns = ("#", "line", "label", "predicted", "p(label)", "AUM", "seen", "right", "forgot", "mean loss", "text")
    for col in columns:
        table.add_column(
            col,
            justify="left" if col in ("label", "predicted", "text") else "right",
            overflow="fold" if col == "text" else "ellipsis",
        )
    for number, row in enumerate(rows, 1):
        p = row.get("p_label")
        loss = row.get("mean_loss")
        table.add_row(
            str(number),
            str(row.get("line", "")),
            str(row["label"]),
            str(row.get("predicted") or ""),
            "" if p is None else f"{p:.3f}",
            "" if row.get("aum") is None else f"{row['aum']:.3f}",
            str(row["seen"]),
            str(row["correct"]),
            str(row["forgetting"]),
            "" if loss is None else f"{loss:.3f}",
            row["text"],
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


# ---------------------------------------------------------------- clean
def _add_clean(sub: Any, common: argparse.ArgumentParser) -> None:
    cl = sub.add_parser(
        "clean",
        parents=[common],
        help="write a run's data without its most suspect training examples, or with them relabelled",
    )
    cl.add_argument("path", metavar="RUN")
    cl.add_argument(
        "--out", required=True, metavar="FILE", help="the file to write (.csv, .tsv or .jsonl); never overwritten"
    )
    action = cl.add_mutually_exclusive_group(required=True)
    action.add_argument("--drop", type=int, metavar="N", help="leave out the N most suspect training examples")
    action.add_argument(
        "--relabel", type=int, metavar="N", help="give the N most suspect the class the run's best model predicts"
    )
    cl.add_argument("--by", metavar="SCORE", help="the suspicion score (as attncoach examples --suspect --by)")
    cl.set_defaults(func=cmd_clean)


def cmd_clean(args: argparse.Namespace) -> int:
    from attncoach.curriculum.clean import clean_run
    from attncoach.curriculum.mislabel import check_suspicion_score
    from attncoach.rundir import RunDir
    from attncoach.train.settings import load_run_config

    check_suspicion_score(args.by)
    n = args.drop if args.drop is not None else args.relabel
    if n < 1:
        raise AttncoachError(f"--{'drop' if args.drop is not None else 'relabel'} must be at least 1, got {n}")
    run = RunDir.existing(args.path)
    _check_has_record(run)
    result = clean_run(run, load_run_config(run.config), Path(args.out), args.drop, args.relabel, args.by)
    what = "dropped" if result.action == "drop" else "relabelled to the model's prediction"
    flips = "" if result.flips_among_changed is None else f" ({result.flips_among_changed:,} of them injected flips)"
    rows = ", ".join(f"{name} {count:,}" for name, count in result.rows.items())
    print(f"{result.changed:,} most suspect training examples by {result.by} {what}{flips}")
    print(
        f"wrote {result.out} ({result.format}; {rows}); train on it with data.path={result.out} data.split_column=split"
    )
    return 0


# ---------------------------------------------------------------- robustness
def _add_robustness(sub: Any, common: argparse.ArgumentParser) -> None:
    rb = sub.add_parser(
        "robustness",
        parents=[common],
        help="a classifier under noise and a black-box attack, its calibration, and per-group metrics",
    )
    rb.add_argument("path", metavar="RUN")
    rb.add_argument("--data", metavar="FILE", help="a labelled CSV/TSV/JSONL file (default: the run's test split)")
    rb.add_argument("--text-column", help="text column of --data (default: the run's)")
    rb.add_argument("--label-column", help="label column of --data (default: the run's)")
    rb.add_argument(
        "--group-column", help="group column of --data (default: the run's data.group_column, when the file has it)"
    )
    rb.add_argument("--encoding", help="encoding of --data (default: the run's)")
    rb.add_argument("--format", help="format of --data: csv, tsv or jsonl (default: from its suffix)")
    rb.add_argument("--seed", type=int, default=0, help="seed of the perturbations and the attack (default: 0)")
    rb.add_argument(
        "--attack-examples",
        type=int,
        default=500,
        metavar="N",
        help="attack the first N correctly classified examples, in an order drawn from the seed (default: 500; 0: none)",
    )
    rb.add_argument(
        "--query-budget", type=int, default=50, metavar="Q", help="model queries per attacked example (default: 50)"
    )
    rb.add_argument(
        "--no-textattack",
        action="store_true",
        help="do not run TextAttack's DeepWordBug recipe even where textattack is installed (it is slow)",
    )
    rb.add_argument("--json", action="store_true", help="print the report as JSON")
    rb.add_argument("--out", metavar="FILE.json", help="write the report here (default: RUN/robustness.json)")
    _add_overwrite_option(rb, "--out")
    rb.set_defaults(func=cmd_robustness)


def cmd_robustness(args: argparse.Namespace) -> int:
    from attncoach.atomicfile import atomic_write_json
    from attncoach.eval.robustness import classifier_logits, robustness_report
    from attncoach.models.saved import load_model
    from attncoach.progress import CountProgress
    from attncoach.rundir import resolve_model_dir

    if args.attack_examples < 0:
        raise AttncoachError(f"--attack-examples must be 0 or more, got {args.attack_examples}")
    if args.query_budget < 2:
        raise AttncoachError(f"--query-budget must be at least 2 (the text and one edit), got {args.query_budget}")
    run = _robustness_run(args.path)
    out = run.robustness
    if args.out is not None and Path(args.out).resolve() != run.robustness.resolve():
        out = _checked_output(args.out, "--out", args.overwrite, inputs=[args.data] if args.data else [])
    model_dir = resolve_model_dir(run.path)
    clf = load_model(model_dir)
    if clf.task != "text_classification":
        raise AttncoachError(f"robustness measures text classifiers; {_other_use(clf.task)}")
    data = _robustness_data(args, run, model_dir, clf)
    temperature = clf.temperature  # calibration.json, checked when the model loaded
    with CountProgress("attack", "examples", enabled=not args.quiet) as bar:
        report = robustness_report(
            classifier_logits(clf),
            data,
            seed=args.seed,
            attack_examples=args.attack_examples,
            query_budget=args.query_budget,
            temperature=temperature,
            deepwordbug=not args.no_textattack,
            progress=bar.update,
        )
    report = {"run": str(run.path), "model": str(model_dir), **report}
    atomic_write_json(out, report)
    if args.json:
        print(_json_text(report))
    else:
        _print_robustness(report)
    log.info("wrote the report to %s", out)
    return 0


def _robustness_run(path: str) -> Any:
    """The run ``path`` names; a model directory or any other folder is refused, saying what to give."""
    from attncoach.rundir import RunDir

    given = Path(path)
    if (given / "model_config.json").is_file() and not RunDir(given).is_run():
        raise AttncoachError(f"{given} is a model directory: give its run directory (robustness reads the run's data)")
    return RunDir.existing(given)


def _robustness_data(args: argparse.Namespace, run: Any, model_dir: Path, clf: Any) -> Any:
    """The labelled texts to measure on: ``--data FILE``, else the run's test split (with its groups)."""
    from attncoach.eval.robustness import LabelledTexts

    if args.data is None:
        if args.group_column:
            raise AttncoachError(
                "--group-column names a column of --data; the run's test split keeps data.group_column"
            )
        cfg, _, data = _run_data(run, model_dir, clf)
        test = data.splits["test"]
        if len(test) == 0:
            raise AttncoachError(f"run {run.path} has an empty test split: give --data FILE to measure on")
        group_column = cfg.data.group_column if test.groups else None
        return LabelledTexts(
            test.texts, test.labels, clf.labels, f"test split of {run.path}", test.groups, group_column
        )
    return _robustness_file(args, run, clf)


def _robustness_file(args: argparse.Namespace, run: Any, clf: Any) -> Any:
    """``--data FILE`` as labelled texts; its groups from --group-column, or from the run's group column
    when the file has that column."""
    import dataclasses

    import numpy as np

    from attncoach.data.prepare import check_labels
    from attncoach.data.readers import column_names
    from attncoach.data.sources import read_examples
    from attncoach.eval.robustness import LabelledTexts
    from attncoach.train.settings import load_run_config as load_config

    cfg = load_config(run.config)
    data_cfg = _eval_data_config(cfg, args)
    try:
        group = args.group_column
        run_group = cfg.data.group_column
        if group is None and run_group and run_group in column_names(Path(args.data), args.format, data_cfg.encoding):
            group = run_group
        examples = read_examples(dataclasses.replace(data_cfg, group_column=group))
        check_labels(examples, clf.labels, args.data)
    except AttncoachError as exc:
        raise AttncoachError(_with_eval_flags(str(exc))) from None
    class_id = {name: i for i, name in enumerate(clf.labels)}
    return LabelledTexts(
        [e.text for e in examples],
        np.array([class_id[e.label] for e in examples], dtype=np.int64),
        clf.labels,
        f"file {args.data}",
        [e.group or "" for e in examples] if group else [],
        group,
    )


def _print_robustness(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    temperature = report["temperature"]
    print(
        f"robustness of {report['run']} on the {report['source']}: {report['examples']} examples, seed {report['seed']}"
    )
    table = Table()
    columns = ["condition", "macro-F1", "accuracy", "drop (points)", "ECE"]
    columns += [] if temperature is None else [f"ECE at T={temperature:.2f}"]
    for col in columns:
        table.add_column(col, justify="left" if col == "condition" else "right")
    for row in report["conditions"]:
        cells = [row["description"], f"{row['macro_f1']:.4f}", f"{row['accuracy']:.4f}", f"{row['drop_points']:.1f}"]
        cells += [f"{row['ece']:.4f}"] + ([] if temperature is None else [f"{row['ece_calibrated']:.4f}"])
        table.add_row(*cells)
    console.print(table)
    if temperature is None:
        print("ECE is of the raw softmax: the model has no calibration.json")
    _print_attacks(console, report["attacks"])
    if report["groups"] is not None:
        _print_groups(console, report["groups"])


def _print_attacks(console: Any, attacks: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not attacks:
        print("no attack ran (--attack-examples 0)")
        return
    print(f"attacks on correctly classified examples, at most {attacks[0]['query_budget']} queries each:")
    table = Table()
    for col in ("attack", "attacked", "success rate", "queries per success", "words edited", "seconds"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for row in attacks:
        if not row["ran"]:
            table.add_row(row["description"], "did not run", "", "", "", "")
            continue
        per_success, edited = row["mean_queries_per_success"], row["mean_fraction_words_edited"]
        table.add_row(
            row["description"],
            str(row["attacked"]),
            f"{100 * row['success_rate']:.1f} %",
            "" if per_success is None else f"{per_success:.1f}",
            "" if edited is None else f"{100 * edited:.1f} %",
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    for row in attacks:
        if not row["ran"]:
            print(f"{row['description']} did not run: {row['reason']}")
    print(f"adversarial examples of the {attacks[0]['description']} attack:")
    for example in attacks[0]["examples"]:
        print(f"  {example['gold']} -> {example['predicted']}: {example['adversarial']!r}  (was {example['text']!r})")


def _print_groups(console: Any, groups: dict[str, Any]) -> None:
    from rich.table import Table

    print(f"groups ({groups['column']}) on the clean texts:")
    table = Table()
    for col in ("group", "examples", "macro-F1", "accuracy"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for row in groups["rows"]:
        table.add_row(row["group"], str(row["n"]), f"{row['macro_f1']:.4f}", f"{row['accuracy']:.4f}")
    console.print(table)
    worst = next(row for row in groups["rows"] if row["group"] == groups["worst"])
    print(f"worst group: {worst['group']} (macro-F1 {worst['macro_f1']:.4f}, accuracy {worst['accuracy']:.4f})")


# ---------------------------------------------------------------- serve
def _add_serve(sub: Any, common: argparse.ArgumentParser) -> None:
    from attncoach.serve.settings import ServeSettings

    defaults = ServeSettings()
    sv = sub.add_parser(
        "serve", parents=[common], help="serve a model over HTTP: predictions, sub-nets chosen by latency budget"
    )
    sv.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    sv.add_argument("--host", default=defaults.host, help=f"address to listen on (default: {defaults.host})")
    sv.add_argument("--port", type=int, default=defaults.port, help=f"TCP port (default: {defaults.port})")
    sv.add_argument("--runtime", choices=("torch", "onnx"), default="torch", help="inference runtime (default: torch)")
    sv.add_argument(
        "--api-key-env", metavar="VAR", help="require the API key held by this environment variable on /v1/*"
    )
    sv.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port, each with its own model and micro-batcher (default: 1); "
        "/metrics sums them all",
    )
    sv.add_argument(
        "--max-batch",
        type=int,
        default=defaults.max_batch,
        metavar="B",
        help=f"rows gathered into one model run (default: {defaults.max_batch}; 1 turns micro-batching off)",
    )
    sv.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        metavar="MS",
        help=f"how long a request waits for others to share its batch (default: {defaults.max_wait_ms:g})",
    )
    sv.add_argument(
        "--queue",
        type=int,
        default=defaults.queue,
        metavar="Q",
        help=f"requests that may wait (default: {defaults.queue}; more get 503)",
    )
    sv.add_argument(
        "--max-texts",
        type=int,
        default=defaults.max_texts,
        metavar="N",
        help=f"texts per request (default: {defaults.max_texts})",
    )
    sv.add_argument(
        "--max-text-chars",
        type=int,
        default=defaults.max_text_chars,
        metavar="N",
        help=f"characters per text (default: {defaults.max_text_chars})",
    )
    sv.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        metavar="N",
        help=f"bytes per request body (default: {defaults.max_body_bytes})",
    )
    sv.add_argument(
        "--threads",
        type=int,
        help="torch threads for inference, per worker (default: torch's default with one worker; "
        "with --workers N, the cores shared out: cores // N, at least 1)",
    )
    sv.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from attncoach.serve.settings import ServeSettings

    _require_serve_extra()
    if args.workers < 1:
        raise AttncoachError(f"--workers must be at least 1, not {args.workers}")
    settings = ServeSettings(
        host=args.host,
        port=args.port,
        api_key=_api_key(args.api_key_env),
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        queue=args.queue,
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
        max_body_bytes=args.max_body_bytes,
    )
    from attncoach.serve.served import load_served
    from attncoach.serve.server import check_address, run_server

    check_address(settings.host, settings.port)  # before the model loads: a busy port is one quick line
    _refuse_image_model(args.path)
    if args.workers > 1:
        return _serve_with_workers(args, settings)
    _set_threads(args.threads)
    served = load_served(args.path, args.runtime, batch_sizes=(1, settings.max_batch))
    log.info(
        "serving %s (%s, %d member(s): %s) on http://%s:%d%s",
        args.path,
        served.task,
        len(served.members),
        ", ".join(m.name for m in served.members),
        settings.host,
        settings.port,
        " (API key required)" if settings.api_key else "",
    )
    run_server(served, settings, log_level="warning" if args.quiet else "info")
    return 0


def _refuse_image_model(path: str) -> None:
    """serve answers texts and item histories, not images (nor a pretrained encoder): refused before it loads."""
    from attncoach.models.saved import PRETRAINED_ENCODER_USE, read_model_config
    from attncoach.rundir import resolve_model_dir

    try:
        task = read_model_config(resolve_model_dir(path))["task"]
    except AttncoachError:  # a family folder, or a damaged model: load_served names what it finds
        return
    if task == "masked_lm":
        raise AttncoachError(f"attncoach serve answers classifiers and recommenders; {PRETRAINED_ENCODER_USE}")
    if task == "image_classification":
        raise AttncoachError(
            f"attncoach serve answers texts and item histories; {path} holds an image_classification model, "
            "which it does not serve: use attncoach predict RUN IMAGE ... instead"
        )


def _serve_with_workers(args: argparse.Namespace, settings: Any) -> int:
    """``serve --workers N``: the model is checked here, before any worker starts; each worker loads its own."""
    from attncoach.serve.app import TASKS
    from attncoach.serve.served import served_task
    from attncoach.serve.workers import WorkerPlan, plan_settings, run_workers, worker_threads

    threads = worker_threads(args.workers) if args.threads is None else args.threads
    if threads < 1:
        raise AttncoachError(f"--threads must be at least 1, got {threads}")
    task = served_task(args.path, args.runtime)
    if task not in TASKS:
        raise AttncoachError(f"attncoach serve answers {' and '.join(TASKS)} models, not {task}")
    plan = WorkerPlan(
        str(Path(args.path).resolve()),
        args.runtime,
        plan_settings(settings),
        args.api_key_env,
        threads,
        quiet=args.quiet,
    )
    log.info(
        "serving %s (%s) on http://%s:%d with %d workers, %d torch thread(s) each%s",
        args.path,
        task,
        settings.host,
        settings.port,
        args.workers,
        threads,
        " (API key required)" if settings.api_key else "",
    )
    run_workers(plan, args.workers)
    return 0


def _require_serve_extra() -> None:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(name) is None]
    if missing:
        raise AttncoachError(f"attncoach serve needs {', '.join(missing)}: pip install 'attncoach[serve]'")


def _api_key(variable: str | None) -> str | None:
    """The API key held by the environment variable ``--api-key-env`` names (None without the option)."""
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise AttncoachError(f"--api-key-env {variable}: the environment variable {variable} is not set or empty")
    return key


if __name__ == "__main__":
    sys.exit(main())


# ---------------------------------------------------------------- report and attention
def _add_report_and_attention(sub: Any, common: argparse.ArgumentParser) -> None:
    rp = sub.add_parser("report", parents=[common], help="one self-contained HTML report of one or several runs")
    rp.add_argument("paths", nargs="+", metavar="RUN")
    rp.add_argument("--out", metavar="FILE.html", help="where to write it (default: RUN/report.html for one run)")
    rp.set_defaults(func=cmd_report)

    at = sub.add_parser(
        "attention", parents=[common], help="per-layer, per-head attention maps of a model on one text or history"
    )
    at.add_argument("path", metavar="RUN_OR_MODEL_DIR")
    at.add_argument("text", help="the text (a next-item model: item ids separated by spaces, oldest first)")
    at.add_argument(
        "--out", metavar="FILE", default="attention.html", help="FILE.html (SVG) or FILE.png (default: attention.html)"
    )
    at.add_argument("--layer", type=int, metavar="L", help="only this layer (0-based; default: all)")
    at.add_argument("--head", type=int, metavar="H", help="only this head of each layer shown (0-based; default: all)")
    _add_subnet_options(at)
    at.set_defaults(func=cmd_attention)


def cmd_report(args: argparse.Namespace) -> int:
    from attncoach.report.page import write_report

    path = write_report(args.paths, Path(args.out) if args.out else None)
    print(path)
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from attncoach.models.saved import load_model
    from attncoach.report.attention import FORMATS, pick, write_attention
    from attncoach.rundir import resolve_model_dir

    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise AttncoachError(f"--out {out} must end in .html or .png")
    if out.is_dir() or not out.parent.is_dir():
        raise AttncoachError(f"--out {out} must be a file in an existing folder")
    model_dir = resolve_model_dir(args.path)
    predictor = load_model(model_dir)
    subnet = _apply_subnet(predictor, args)
    tokens, maps = predictor.attention(args.text)
    chosen = pick(maps, args.layer, args.head)
    source = f"{model_dir}" + (f", sub-net {subnet}" if subnet else "")
    write_attention(out, args.text, tokens, chosen, source)
    print(out)
    return 0


# ---------------------------------------------------------------- tune
def _add_tune(sub: Any, common: argparse.ArgumentParser) -> None:
    tn = sub.add_parser(
        "tune",
        parents=[common],
        help="search hyperparameters: one coached run per trial, sampled and pruned by Optuna",
        description="Search the config's tune.space: each trial is a coached run in OUT/trial-NNNN, sampled "
        "(tune.sampler) and pruned at its evaluations (tune.pruner) by Optuna. Run the same command again to "
        "resume a killed tune; give two processes the same --storage and --study to share one study.",
    )
    tn.add_argument("--config", help="YAML config file whose tune.space lists the searched keys")
    tn.add_argument("--trials", type=int, required=True, help="finished (complete or pruned) trials to reach")
    tn.add_argument(
        "--backend",
        choices=["optuna", "ray"],
        default="optuna",
        help="the search library (default: optuna); ray: Ray Tune with tune.scheduler asha, pbt or fifo",
    )
    tn.add_argument(
        "--address",
        help="--backend ray: HOST:PORT of a Ray cluster's head (ray start --head); default: a local Ray",
    )
    tn.add_argument("--out", help="the study's directory (default: runs/tune-<config name>)")
    tn.add_argument(
        "--storage",
        help="an SQLAlchemy URL (sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB) or memory "
        "(default: SQLite in --out, which a rerun resumes)",
    )
    tn.add_argument("--study", help="the study's name in the storage (default: the --out directory's name)")
    tn.add_argument(
        "--retrain-best", action="store_true", help="then train the best configuration at the config's full length"
    )
    tn.add_argument(
        "--retrain-seeds", type=int, nargs="+", metavar="S", help="seeds of --retrain-best (default: the config's)"
    )
    _add_overrides(tn, "config overrides for every trial (e.g. train.max_steps=300)")
    tn.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from attncoach.tune.study import TuneRequest, tune

    if args.retrain_seeds and not args.retrain_best:
        raise AttncoachError("--retrain-seeds goes with --retrain-best")
    if args.backend == "ray" and args.storage is not None:
        raise AttncoachError("--storage is Optuna's; --backend ray keeps its experiment in --out")
    if args.backend == "optuna" and args.address is not None:
        raise AttncoachError("--address is Ray's; give it with --backend ray")
    out = Path(args.out) if args.out else Path("runs") / f"tune-{Path(args.config).stem if args.config else 'default'}"
    request = TuneRequest(
        config=args.config,
        trials=args.trials,
        out=out,
        overrides=list(args.overrides),
        storage=args.storage,
        study=args.study,
        retrain_best=args.retrain_best,
        retrain_seeds=args.retrain_seeds,
        quiet=args.quiet,
    )
    if args.backend == "ray":
        from attncoach.tune.ray_backend import tune_ray

        result = tune_ray(request, address=args.address)
    else:
        from attncoach.tune.ray_backend import refuse_ray_keys
        from attncoach.tune.study import _base_config

        refuse_ray_keys(_base_config(request))
        result = tune(request)
    _print_trials(result)
    return 0


def _print_trials(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    metric = result["metric"].split(" ", 1)[1]
    latency = result.get("latency")  # two objectives: the val metric (maximised) and this latency (minimised)
    goal = f"{result['metric']} (maximised)"
    if latency is not None:
        goal += f" and ms at batch {latency['batch']} (minimised) of {_subnet_name(latency['subnet'])}"
    table = Table(title=f"study {result['study']}: {goal}")
    extra = ("ms", "Pareto") if latency is not None else ()
    for column in ("trial", "state", *result["space"], f"val {metric}", f"test {metric}", *extra, "steps", "s", "run"):
        table.add_column(column, justify="left" if column in ("state", "run") else "right")
    best = result["best"]["number"] if result["best"] else None
    for row in result["trials"]:
        val, test = row[f"val_{metric}"], row[f"test_{metric}"]
        ms = row.get("latency_ms")
        front = ("-" if ms is None else f"{ms:.2f}", "✓" if row.get("pareto") else "") if latency is not None else ()
        table.add_row(
            f"{row['number']}{' *' if row['number'] == best else ''}",
            row["state"],
            *(_cell(row["params"].get(key)) for key in result["space"]),
            "-" if val is None else f"{val:.4f}",
            "-" if test is None else f"{test:.4f}",
            *front,
            "-" if row["steps"] is None else str(row["steps"]),
            "-" if row["seconds"] is None else f"{row['seconds']:.0f}",
            row["run_dir"] or "-",
        )
    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
        console = Console(width=220)
    console.print(table)
    counts = ", ".join(f"{n} {state}" for state, n in result["counts"].items() if n)
    print(f"{len(result['trials'])} trials ({counts}); {result['examples_seen']:,} training examples in all")
    if result["best"]:
        b = result["best"]
        ms = f", {b['latency_ms']:.2f} ms" if "latency_ms" in b else ""
        print(f"best: trial {b['number']}, val {metric} {b['value']:.4f}{ms} -> {b['run_dir']} (config: {b['config']})")
    retrained = result.get("retrained")
    if retrained:
        print(f"best configuration retrained: median test {metric} {retrained[f'median_test_{metric}']:.4f}")


def _subnet_name(subnet: Any) -> str:
    if isinstance(subnet, str):
        return "the whole model"
    return "sub-net " + " ".join(f"{k} {v:g}" for k, v in subnet.items())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- select, active
def _add_active(sub: Any, common: argparse.ArgumentParser) -> None:
    from attncoach.active.strategies import STRATEGIES

    se = sub.add_parser(
        "select",
        parents=[common],
        help="rank unlabelled texts: the ones a trained classifier would have labelled next",
        description="Score every text of --pool with the run's model and write the --budget to label next, "
        "ranked, with their scores (entropy: highest first; margin: smallest first; badge and coreset: "
        "distance when chosen; random: none).",
    )
    se.add_argument("path", metavar="RUN", help="a text-classification run (or model) directory")
    se.add_argument("--pool", required=True, help="unlabelled texts: .txt (one per line), CSV, TSV or JSONL")
    se.add_argument("--budget", type=int, required=True, help="how many texts to choose")
    se.add_argument("--strategy", default="entropy", help=f"one of {', '.join(STRATEGIES)} (default: entropy)")
    se.add_argument("--text-column", default="text", help="the pool's text column (default: text)")
    se.add_argument("--encoding", default="utf-8", help="the pool's text encoding (default: utf-8)")
    se.add_argument("--seed", type=int, default=0, help="seed of random and of BADGE's draws (default: 0)")
    se.add_argument("--out", help="write the ranking here (.jsonl or .csv; default: JSON lines on stdout)")
    se.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    se.set_defaults(func=cmd_select)
    ac = sub.add_parser(
        "active",
        parents=[common],
        help="simulate active learning on a labelled corpus: rounds of training and choosing what to label",
        description="The config's training split is the pool: round 0 trains on --start random examples, each "
        "later round adds the --step examples the strategy picked with the previous round's model (their gold "
        "labels revealed) and starts from its weights. OUT/active.json holds the learning curve; running the "
        "same command again resumes a stopped loop.",
    )
    ac.add_argument("--config", help="YAML config of a text-classification run (its data is the pool)")
    ac.add_argument("--start", type=int, default=200, help="labels of round 0, drawn at random (default: 200)")
    ac.add_argument("--step", type=int, default=200, help="labels added per round (default: 200)")
    ac.add_argument("--rounds", type=int, default=8, help="rounds of training (default: 8)")
    ac.add_argument("--strategy", default="entropy", help=f"one of {', '.join(STRATEGIES)} (default: entropy)")
    ac.add_argument("--out", help="the loop's directory (default: runs/active-<config name>-<strategy>)")
    _add_overrides(ac, "config overrides for every round (e.g. model.backbone=minilm)")
    ac.set_defaults(func=cmd_active)


def cmd_select(args: argparse.Namespace) -> int:
    from attncoach.active.select import SelectRequest, check_request, select_from_pool

    check_request(args.strategy, args.budget)
    out = _checked_output(args.out, "--out", args.overwrite, inputs=[args.pool])
    if out is not None and out.suffix.lower() not in (".jsonl", ".csv"):
        raise AttncoachError(f"--out {out}: write .jsonl or .csv")
    request = SelectRequest(
        run=args.path,
        pool=Path(args.pool),
        budget=args.budget,
        strategy=args.strategy,
        text_column=args.text_column,
        encoding=args.encoding,
        seed=args.seed,
    )
    rows = select_from_pool(request)
    if out is None:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    _write_rows(out, rows)
    log.info("wrote the %d texts to label next (%s) to %s", len(rows), args.strategy, out)
    return 0


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from attncoach.atomicfile import atomic_write_text

    if out.suffix.lower() == ".jsonl":
        atomic_write_text(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buffer.getvalue())


def cmd_active(args: argparse.Namespace) -> int:
    from attncoach.active.loop import ActiveRequest, active

    stem = Path(args.config).stem if args.config else "default"
    out = Path(args.out) if args.out else Path("runs") / f"active-{stem}-{args.strategy}"
    request = ActiveRequest(
        config=args.config,
        out=out,
        start=args.start,
        step=args.step,
        rounds=args.rounds,
        strategy=args.strategy,
        overrides=list(args.overrides),
        quiet=args.quiet,
    )
    state = active(request)
    _print_curve(state)
    return 0


def _print_curve(state: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    settings = state["settings"]
    table = Table(title=f"active learning: {settings['strategy']}, pool of {settings['pool']:,} texts")
    for column in ("round", "labels", "val macro-F1", "test macro-F1", "test accuracy", "steps", "run"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in state["rounds"]:
        table.add_row(
            str(row["round"]),
            f"{row['labels']:,}",
            f"{row['val_macro_f1']:.4f}",
            f"{row['test_macro_f1']:.4f}",
            f"{row['test_accuracy']:.4f}",
            str(row["steps"]),
            row["run_dir"],
        )
    Console(width=200).print(table)
