"""Train one of the course's face models and write its weights, model card and facts (a developer tool).

Only the course's developers need this: the trained weights ship in ``data/`` and the
course loads them without any data set. Training needs the shared face set
``../shared/data/faces48.npz`` (UTKFace adults, 48x48 grayscale; non-commercial research and
education only, never shipped). From the repository root::

    python tools/train_face_model.py --variant gender --data ../shared/data/faces48.npz \\
        --out data/gender_cnn.weights.h5 --card data/gender_cnn.md
    python tools/train_face_model.py --variant robust --data ../shared/data/faces48.npz
    python tools/train_face_model.py --variant substitute --data ../shared/data/faces48.npz
    python tools/train_face_model.py --variant distilled --data ../shared/data/faces48.npz
    python tools/train_face_model.py --variant noisy --data ../shared/data/faces48.npz

``gender`` is lesson 1's model, ``robust`` lesson 4's adversarially trained one, ``substitute``
lesson 5's copy grown from lesson 1's model's answers, ``distilled`` and ``noisy`` lesson 7's
defensive distillation and base model of randomized smoothing (:mod:`tools.facetrain.variants`
says what each trains and measures). Each writes its weights (``--out``), its model card
(``--card``, from the template ``tools/cards/<variant>.md``) and, all but ``gender``, the JSON of
facts its lesson reads (``--facts``); the defaults are the shipped files, except that ``gender``
writes a card only when given ``--card``. With ``--card-only``, ``gender`` rewrites only the card
from the weights in ``--out``, re-measured, keeping the training run's facts from the old card.

Everything is seeded and TensorFlow's deterministic ops are on, so the same seed, data and library
versions give the same files. The tool never leaves half a result: the settings, the output
locations and the data are checked before training, training that ends with non-finite weights
writes nothing, and the files are written together or not at all
(:func:`tools.facetrain.outputs.write_files_together`). Errors are one line on stderr, exit status
1; bad options exit with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

import course_utils  # noqa: E402,F401  (quiets TensorFlow's start-up before Keras imports it)
import keras  # noqa: E402

from course_utils.models.faces import load_gender_cnn  # noqa: E402
from tools.facetrain.card import display_path, render_card, training_facts_from_card  # noqa: E402
from tools.facetrain.data import DEFAULT_DATA, FaceDataError, read_face_set, split_faces  # noqa: E402
from tools.facetrain.outputs import check_writable, write_files_together  # noqa: E402
from tools.facetrain.training import check_weights_name, deterministic_ops, weights_writer  # noqa: E402
from tools.facetrain.variants import VARIANTS, Faces, Variant  # noqa: E402

PROG = "python tools/train_face_model.py"

#: Every variant's own options: argparse ``dest`` -> (type, help). Their defaults are the variants'
#: (:attr:`tools.facetrain.variants.Variant.options`); ``bool`` options are flags.
OPTIONS: dict[str, tuple[type, str]] = {
    "epochs": (int, "training epochs (substitute: per round)"),
    "batch_size": (int, "faces per gradient step"),
    "learning_rate": (float, "Adam's learning rate"),
    "seed": (int, "seed of initialisation, training, noise and attacks"),
    "split_seed": (int, "seed of the held-out split (lesson 1's: 0)"),
    "no_augment": (bool, "train without flips, shifts and exposure changes"),
    "no_cosine_decay": (bool, "keep the learning rate constant"),
    "epsilon": (float, "training budget, grey levels"),
    "steps": (int, "PGD steps per training batch"),
    "clean_weight": (float, "share of the loss on the clean faces"),
    "ramp_epochs": (int, "epochs over which the budget grows to --epsilon"),
    "eval_steps": (int, "PGD steps of the measured numbers"),
    "standard_weights": (Path, "lesson 1's weights to measure (default: the shipped ones)"),
    "seed_faces": (int, "the attacker's unlabelled faces"),
    "rounds": (int, "rounds of querying, training and augmenting"),
    "lam": (float, "augmentation step, grey levels"),
    "flip_every": (int, "flip the augmentation step's sign every this many rounds"),
    "temperature": (float, "distillation temperature T > 0"),
    "sigma": (float, "noise standard deviation, grey levels (> 0)"),
    "n0": (int, "selection samples of CERTIFY"),
    "n": (int, "estimation samples of CERTIFY"),
    "alpha": (float, "failure probability of CERTIFY"),
    "certify_faces": (int, "certify a seeded subset of this many held-out faces (0: all of them)"),
}
FILES = {"out": "--out (the weights file)", "card": "--card (the model card)", "facts": "--facts (the facts JSON)"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", required=True, choices=list(VARIANTS), help="the face model to train")
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", default=None, help="weights file to write (default: the shipped one; read with --card-only)")
    parser.add_argument("--card", default=None, help="model card (Markdown) to write (default: the shipped one; gender: none)")
    parser.add_argument("--facts", default=None, help="facts (JSON) to write (default: the shipped one; not gender)")
    parser.add_argument("--card-only", action="store_true",
                        help="gender: do not train; rewrite only --card from the weights in --out, keeping the training run's facts")
    groups: dict[tuple[str, ...], Any] = {}
    for dest, (kind, text) in OPTIONS.items():
        owners = tuple(v.name for v in VARIANTS.values() if dest in v.options)
        if owners not in groups:
            title = "options of every variant" if len(owners) == len(VARIANTS) else f"options of --variant {', '.join(owners)}"
            groups[owners] = parser.add_argument_group(title)
        defaults = {VARIANTS[name].options[dest] for name in owners}
        if kind is bool:
            groups[owners].add_argument(_flag(dest), action="store_true", help=text)
            continue
        if defaults == {None}:
            shown = ""
        elif len(defaults) == 1:
            shown = f" (default {defaults.pop()})"
        else:
            shown = f" (default: {', '.join(f'{name} {VARIANTS[name].options[dest]}' for name in owners)})"
        groups[owners].add_argument(_flag(dest), type=kind, default=None, help=text + shown)
    return parser


def _settle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Variant:
    """Refuse options of other variants; fill in the variant's defaults and the retrain command."""
    variant = VARIANTS[args.variant]
    for dest in OPTIONS:
        value = getattr(args, dest)
        if dest in variant.options:
            if value is None or value is False:
                setattr(args, dest, variant.options[dest])
        elif value is not None and value is not False:
            owners = ", ".join(v.name for v in VARIANTS.values() if dest in v.options)
            parser.error(f"{_flag(dest)} is not an option of --variant {variant.name} (only of {owners})")
    if args.card_only and variant.name != "gender":
        parser.error("--card-only is an option of --variant gender only")
    if args.facts is not None and variant.facts is None:
        parser.error(f"--variant {variant.name} writes no facts JSON; drop --facts")
    args.command = _retrain_command(args, variant)
    for name in FILES:
        if getattr(args, name) is None:
            setattr(args, name, getattr(variant, name))
    if args.split_seed is None:  # distilled always uses lesson 1's split
        args.split_seed = 0
    return variant


def _same_path(a: Any, b: Any) -> bool:
    return a is None or (b is not None and os.path.abspath(a) == os.path.abspath(b))


def _retrain_command(args: argparse.Namespace, variant: Variant) -> str:
    """The command that retrains with ``args``' settings, as the card prints it: the data, every
    option that differs from the variant's default, and the output files unless they are the default."""
    parts = [PROG, "--variant", variant.name, "--data", display_path(args.data)]
    for dest, default in variant.options.items():
        value = getattr(args, dest)
        if value == default:
            continue
        parts.append(_flag(dest))
        if value is not True:
            parts.append(f"{value:g}" if isinstance(value, float) else display_path(value) if isinstance(value, Path) else str(value))
    for name in FILES:
        if not _same_path(getattr(args, name), getattr(variant, name)):
            parts += [f"--{name}", display_path(getattr(args, name))]
    return " ".join(parts)


def _check_outputs(args: argparse.Namespace) -> tuple[Path, tuple[keras.Model, dict[str, Any]] | None]:
    """Check every output location (and, with ``--card-only``, the card and weights it reads)
    before any long work; return the weights path and what ``--card-only`` keeps."""
    out = check_weights_name(args.out)
    kept = None
    if args.card_only:
        if not args.card:
            raise ValueError("--card-only needs --card, the model card to rewrite")
        card = Path(args.card)
        if not card.is_file():
            raise FileNotFoundError(f"--card-only rewrites an existing card, and there is none at {card}; retrain to write one")
        facts = training_facts_from_card(card.read_text(encoding="utf-8"))
        kept = (load_gender_cnn(out), facts)  # refuses missing, damaged or non-finite weights
    else:
        check_writable(out, FILES["out"])
    for name in ("card", "facts"):
        if getattr(args, name):
            check_writable(getattr(args, name), FILES[name])
    return out, kept


def _run(args: argparse.Namespace, variant: Variant) -> int:
    """The command line's work; raises the course's errors, which :func:`main` prints."""
    started = time.perf_counter()
    # 1. Everything that can be checked before a long run.
    variant.check(args)
    out, kept = _check_outputs(args)
    images, labels, races = read_face_set(args.data)
    if variant.min_faces_per_class:
        counts = [int(np.sum(labels == c)) for c in (0, 1)]
        if min(counts) < variant.min_faces_per_class:
            raise ValueError(f"too few faces to train and test on: {counts[0]} men and {counts[1]} women "
                             f"(need at least {variant.min_faces_per_class} of each)")
    train_idx, test_idx = split_faces(labels, test_fraction=0.2, seed=args.split_seed)
    print(f"data: {len(labels)} faces; train {len(train_idx)}, held-out test {len(test_idx)} "
          f"(stratified, split seed {args.split_seed})")
    faces = Faces(images, labels, races, train_idx, test_idx)
    # 2. Train and measure (or, with --card-only, only measure).
    if kept is None:
        with deterministic_ops():
            trained = variant.run(args, faces)
    else:
        trained = variant.run(args, faces, kept=kept)
    # 3. Write the files together, or nothing.
    writers: dict[Path, Any] = {}
    if kept is None:
        writers[out] = weights_writer(trained.model, variant.build)
    if args.card:
        card = render_card(variant.name, variant.card_fields(trained.report))
        writers[Path(args.card)] = lambda temp: temp.write_text(card, encoding="utf-8")
    if args.facts:
        facts = variant.facts_json(trained.report)
        writers[Path(args.facts)] = lambda temp: temp.write_text(facts, encoding="utf-8")
    if trained.summary:
        print(trained.summary)
    for path in write_files_together(writers):
        print(f"wrote {display_path(path)} ({path.stat().st_size / 1024:.1f} KiB)")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: check, train, measure on the held-out faces, write the variant's files.

    Returns 0 on success and 1 after printing one line ``... error: <what and how to fix>`` to
    stderr when the settings, an output location or the data is refused or training fails
    (nothing is written then); bad or misplaced options exit with status 2 (argparse).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    variant = _settle(parser, args)
    try:
        return _run(args, variant)
    except (FaceDataError, FileNotFoundError, ValueError, OSError) as error:
        message = " ".join(str(error).split())  # one line
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
