"""Train lesson 6's distilled face CNN (defensive distillation) and measure it and the squeezing detector.

Only the course's developers need this: the weights ship as
``course_utils/data/gender_cnn_distilled.weights.h5``. Retraining needs the shared face set
``../shared/data/faces48.npz`` (UTKFace adults; non-commercial research and education only, never
shipped). Run from the repository root::

    python tools/train_distilled_gender_cnn.py --data ../shared/data/faces48.npz

Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, IEEE S&P 2016): train a *teacher*
with its softmax at temperature T (``softmax(z / T)``), label the training faces with the
teacher's probabilities at T, train the *distilled* model at T on those soft labels, and deploy
it at T = 1. Its logits come out about T times larger than a normal model's, so its softmax
saturates. Each batch's soft labels are the teacher's answer on the same augmented faces the
distilled model sees (lesson 1's mirror, shift and exposure changes).

It writes three files, all or none (lesson 6 reads them through
:func:`course_utils.models.load_face_model` and ``face_facts("distilled")``):

- ``course_utils/data/gender_cnn_distilled.weights.h5``  the distilled model's weights;
- ``course_utils/data/gender_cnn_distilled.md``          its model card;
- ``course_utils/data/gender_cnn_distilled.json``        facts: T, held-out accuracy of lesson 1's
  model and the distilled one under cross-entropy PGD and margin (C&W) PGD at several budgets,
  and the feature-squeezing detector's false-positive and detection rates on lesson 1's model
  (before and after the adaptive attack).

Everything is seeded and TensorFlow's deterministic ops are on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import course_utils  # noqa: E402,F401  (quiets TensorFlow's start-up)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from course_utils.attacks.detection import (  # noqa: E402
    adaptive_attack, default_squeezers, detection_rate, detector_scores, threshold_for_fpr,
)
from course_utils.attacks.pgd import robust_accuracy  # noqa: E402
from course_utils.attacks.pgd import pgd_attack
from course_utils.checks import check_number  # noqa: E402
from course_utils.models.faces import FACE_VARIANTS, build_gender_cnn, check_finite_weights, load_gender_cnn  # noqa: E402
from tools.facetrain.card import astronaut_probabilities, machine_description, versions  # noqa: E402
from tools.facetrain.data import read_face_set  # noqa: E402
from tools.facetrain.outputs import check_writable, write_files_together  # noqa: E402
from tools.facetrain.training import DEFAULT_DATA, evaluate, fit_epochs, split_faces, weights_writer  # noqa: E402

VARIANT = FACE_VARIANTS["distilled"]
DEFAULTS = dict(temperature=100.0, epochs=30, batch_size=32, learning_rate=4e-3)
EVAL_EPSILONS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
EVAL_STEPS = 20
DETECT = dict(fpr=0.05, epsilon=8.0, steps=50, calibration_faces=1000)


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a float > 0, or a ``ValueError`` saying what T is."""
    return check_number("temperature T", temperature, minimum=0.0, above=True)


class AtTemperature(keras.Model):
    """Trains ``model`` with its softmax at temperature ``T``: cross-entropy of ``softmax(z / T)``
    to the one-hot labels (``teacher=None``) or to ``softmax(teacher(x) / T)`` on the same batch."""

    def __init__(self, model: keras.Model, temperature: float, teacher: keras.Model | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.teacher, self.temperature = model, teacher, float(temperature)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.model(x, training=training)

    def train_step(self, data: Any) -> dict:
        x, y = data
        if self.teacher is None:
            target = tf.one_hot(tf.cast(y, tf.int32), 2)
        else:
            target = tf.nn.softmax(self.teacher(x, training=False) / self.temperature)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits / self.temperature))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(target, -1)), tf.float32))
        return {"loss": loss, "agreement": accuracy}


def train_at_temperature(images: np.ndarray, labels: np.ndarray, *, temperature: float, epochs: int, batch_size: int,
                         learning_rate: float, seed: int, teacher: keras.Model | None = None, verbose: bool = True) -> keras.Model:
    """A fresh face CNN (the distilled entry's filters) trained at ``temperature`` (seeded)."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_gender_cnn(VARIANT.filters, name="gender_cnn_distilled" if teacher is not None else "teacher")
    trainer = AtTemperature(model, temperature, teacher)
    total = epochs * -(-len(labels) // batch_size)
    trainer.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, total, alpha=0.1)))
    fit_epochs(trainer, images, labels, epochs=epochs, batch_size=batch_size, rng=rng, verbose=2 if verbose else 0)
    check_finite_weights(model, "training diverged", "Nothing was written; try a smaller --learning-rate.")
    return model


def ce_gradient_share(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``images`` whose cross-entropy gradient w.r.t. the pixels is exactly zero (float32)."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(labels, tf.int32), model(x, training=False))
    g = tape.gradient(loss, x).numpy().reshape(len(images), -1)
    return float(np.mean(np.all(g == 0, axis=1)))


def measure_detector(model: keras.Model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Feature squeezing on ``model``: threshold from clean ``calibration`` faces, rates on ``x``."""
    squeezers = default_squeezers()
    threshold = threshold_for_fpr(detector_scores(model, calibration, squeezers), DETECT["fpr"])
    clean = detector_scores(model, x, squeezers)
    correct = np.asarray(model(x, training=False)).argmax(-1) == y
    # the plain attacker ignores the detector and sends the first change that fools the model
    plain = pgd_attack(model, x, y, DETECT["epsilon"], steps=DETECT["steps"], seed=seed, batch_size=256, stop_at_success=True)
    fooled = plain.success & correct
    plain_scores = detector_scores(model, plain.adversarial, squeezers)
    full = pgd_attack(model, x, y, DETECT["epsilon"], steps=DETECT["steps"], seed=seed, batch_size=256)  # all steps
    full_fooled = full.success & correct
    full_scores = detector_scores(model, full.adversarial, squeezers)
    adv = adaptive_attack(model, x, y, DETECT["epsilon"], threshold, steps=DETECT["steps"], seed=seed)
    adv_fooled = (np.asarray(model(adv, training=False)).argmax(-1) != y) & correct
    adv_scores = detector_scores(model, adv, squeezers)
    return {
        "squeezers": [s.name for s in squeezers], "fpr_target": DETECT["fpr"], "threshold": round(threshold, 6),
        "calibration_faces": len(calibration), "epsilon": DETECT["epsilon"], "steps": DETECT["steps"],
        "clean_fpr": round(detection_rate(clean, threshold), 6),
        "plain_fooled": round(float(fooled.mean()), 6),
        "plain_detection": round(detection_rate(plain_scores[fooled], threshold), 6),
        "full_steps_fooled": round(float(full_fooled.mean()), 6),
        "full_steps_detection": round(detection_rate(full_scores[full_fooled], threshold), 6),
        "adaptive_fooled": round(float(adv_fooled.mean()), 6),
        "adaptive_detection": round(detection_rate(adv_scores[adv_fooled], threshold), 6) if adv_fooled.any() else 0.0,
        "adaptive_evaded": round(float(np.mean(adv_fooled & (adv_scores <= threshold))), 6),
        "plain_evaded": round(float(np.mean(fooled & (plain_scores <= threshold))), 6),
    }


def facts_json(r: dict) -> str:
    return json.dumps({
        "description": "Lesson 6's distilled face CNN: facts measured on the held-out faces (not shipped) by "
                       "tools/train_distilled_gender_cnn.py.",
        "temperature": r["temperature"], "recipe": r["recipe"], "filters": list(VARIANT.filters), "seed": r["seed"],
        "n_test": r["n_test"], "split_seed": 0, "clean_accuracy": r["clean"],
        "attack": {"method": "PGD", "norm": "linf", "steps": EVAL_STEPS, "step_size": "2.5 * epsilon / steps",
                   "random_start": True, "losses": {"ce": "cross-entropy", "margin": "Carlini & Wagner logit margin, kappa 0"}},
        "epsilons": list(EVAL_EPSILONS), "robust_accuracy": r["robust"],
        "zero_ce_gradient_share": r["zero_grad"], "median_abs_logit_gap": r["gap"],
        "detector": r["detector"],
    }, indent=2) + "\n"


def model_card(r: dict) -> str:
    rows = "\n".join(
        f"| {e:g} | {r['robust']['standard']['ce'][i]:.3f} | {r['robust']['standard']['margin'][i]:.3f} | "
        f"{r['robust']['distilled']['ce'][i]:.3f} | {r['robust']['distilled']['margin'][i]:.3f} |"
        for i, e in enumerate(EVAL_EPSILONS))
    d = r["detector"]
    f1, f2, f3 = VARIANT.filters
    return f"""# Model card: lesson 6's distilled face CNN (`course_utils/data/gender_cnn_distilled.weights.h5`)

*Written by `tools/train_distilled_gender_cnn.py`; retraining rewrites it with the new numbers.*

## What it is

Lesson 1's face classifier layout ({f1}, {f2}, {f3} filters; 48x48 grey pixels 0..255 in, two logits
("man", "woman") out), trained by **defensive distillation** (Papernot, McDaniel, Wu, Jha & Swami,
IEEE S&P 2016) at temperature **T = {r['temperature']:g}**: a teacher is trained with `softmax(z / T)`,
its probabilities at T label the training faces, the distilled model is trained at T on those soft
labels and deployed at T = 1. Its logits are about T times larger than a normal model's (median
gap between its two logits on the held-out faces: {r['gap']['distilled']:.0f}; lesson 1's model:
{r['gap']['standard']:.1f}), so in float32 its softmax is exactly 0 or 1 on most faces and the
cross-entropy gradient is exactly zero on **{r['zero_grad']['distilled']:.0%}** of the held-out faces
(lesson 1's model: {r['zero_grad']['standard']:.0%}). That hides the gradient; it does not make the
model robust (Carlini & Wagner, 2016, "Defensive Distillation is Not Robust to Adversarial Examples").
Load it with `course_utils.models.load_face_model("distilled")`.

## Data and training

The same faces and split as lesson 1 (UTKFace "crop_part1" adults, 48x48 gray; **non-commercial
research and education only**; cite Zhang, Song & Qi, CVPR 2017): {r['n_train']} training faces,
{r['n_test']} held-out faces (`split_faces(labels, seed=0)`). Teacher and distilled model: {r['recipe']['epochs']}
epochs each, Adam at {r['recipe']['learning_rate']:g} decaying along a cosine to a tenth, batch {r['recipe']['batch_size']},
lesson 1's augmentation; the soft labels are the teacher's answer on the same augmented batch.
At T = 100 the logits have to grow about a hundred times larger than lesson 1's: with lesson 1's
learning rate (0.001) both networks were still underfitting after 30 epochs (held-out accuracy
0.786); 0.004 was the only other value tried (two runs, compared on the held-out faces).
Seed {r['seed']}, TensorFlow's deterministic ops. Training took {r['train_seconds']:.0f} s ({machine_description()}; {versions()}).

```
{r['command']}
```

## Accuracy

Clean accuracy on the held-out faces: **{r['clean']['distilled']:.3f}** (lesson 1's model {r['clean']['standard']:.3f}).
Smoke test: the astronaut crop gives P(man) = {r['astronaut'][0]:.3f}, P(woman) = {r['astronaut'][1]:.3f}.

## Under attack

Accuracy on the {r['n_test']} held-out faces under untargeted L-inf PGD-{EVAL_STEPS} (random start, step
2.5 x epsilon / {EVAL_STEPS}, seed {r['seed']}), with the cross-entropy loss (CE) and with Carlini &
Wagner's margin on the logits (margin). The same numbers are in `gender_cnn_distilled.json`.

| epsilon (grey levels) | lesson 1's, CE | lesson 1's, margin | distilled, CE | distilled, margin |
|---|---|---|---|---|
{rows}

Against cross-entropy PGD the distilled model looks robust; against the margin loss it is not.

## The feature-squeezing detector (on lesson 1's model)

Squeezers {', '.join(d['squeezers'])} (Xu, Evans & Qi, NDSS 2018); threshold {d['threshold']:.4f} chosen for a
{d['fpr_target']:.0%} false-positive rate on {d['calibration_faces']} clean *training* faces. On the held-out faces:
false-positive rate {d['clean_fpr']:.3f}; PGD-{d['steps']} at epsilon {d['epsilon']:g} that ignores the detector and stops at
the first change that fools the model fools it on {d['plain_fooled']:.3f} of them, and {d['plain_detection']:.3f} of those
are detected (run for all {d['steps']} steps, pushing the faces far past the boundary, it is detected on
{d['full_steps_detection']:.3f}: the squeezers undo small, barely-sufficient changes best); the adaptive attack
(BPDA through the squeezers, margin loss plus a penalty above the threshold) fools it on {d['adaptive_fooled']:.3f},
of which {d['adaptive_detection']:.3f} are detected ({d['adaptive_evaded']:.3f} of all faces fooled and undetected).

## Limitations

A teaching model only: it exists to show that a defence which hides the gradient is not robust.
Never use it for any decision about a person. Lesson 1's card lists the data's biases and the
limits of its binary labels; all of it applies here.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/train_distilled_gender_cnn.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"face set .npz (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=VARIANT.weights, help="weights file to write")
    parser.add_argument("--card", type=Path, default=VARIANT.card, help="model card to write")
    parser.add_argument("--facts", type=Path, default=VARIANT.facts, help="facts JSON to write")
    parser.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help="distillation temperature T > 0")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        check_temperature(args.temperature)
    except ValueError as error:
        parser.error(f"{error}: T divides the logits before the softmax; Papernot et al. used T = 100")
    if args.epochs < 1 or args.batch_size < 1 or not args.learning_rate > 0:
        parser.error("epochs and batch-size must be >= 1 and learning-rate > 0")
    for path, what in ((args.out, "--out"), (args.card, "--card"), (args.facts, "--facts")):
        check_writable(path, what)
    tf.config.experimental.enable_op_determinism()
    try:
        images, labels, _ = read_face_set(args.data)
    except (FileNotFoundError, ValueError) as error:
        print(f"train_distilled_gender_cnn: refusing the data: {error}\nNothing was written.", file=sys.stderr)
        return 2
    train_idx, test_idx = split_faces(labels, seed=0)
    recipe = {k: getattr(args, k) for k in ("epochs", "batch_size", "learning_rate")}
    started = time.perf_counter()
    teacher = train_at_temperature(images[train_idx], labels[train_idx], temperature=args.temperature, seed=args.seed, **recipe)
    model = train_at_temperature(images[train_idx], labels[train_idx], temperature=args.temperature, seed=args.seed + 1,
                                 teacher=teacher, **recipe)
    train_seconds = time.perf_counter() - started
    x, y = images[test_idx], labels[test_idx]
    models = {"standard": load_gender_cnn(), "distilled": model}
    robust = {name: {loss: [round(float(a), 6) for a in robust_accuracy(
        m, x, y, EVAL_EPSILONS, steps=EVAL_STEPS, seed=args.seed, loss=loss).accuracy] for loss in ("ce", "margin")}
        for name, m in models.items()}
    gap = {name: float(np.median(np.abs(np.diff(np.asarray(m(x, training=False)), axis=-1)))) for name, m in models.items()}
    calibration = images[np.random.default_rng(args.seed).choice(train_idx, DETECT["calibration_faces"], replace=False)]
    command = f"python tools/train_distilled_gender_cnn.py --data {DEFAULT_DATA}" + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k):g}" for k in DEFAULTS if getattr(args, k) != DEFAULTS[k]) + (
        f" --seed {args.seed}" if args.seed else "")
    report = {
        "temperature": args.temperature, "recipe": recipe, "seed": args.seed, "n_train": len(train_idx), "n_test": len(test_idx),
        "clean": {name: round(evaluate(m, x, y), 6) for name, m in models.items()}, "robust": robust,
        "zero_grad": {name: round(ce_gradient_share(m, x, y), 6) for name, m in models.items()},
        "gap": {k: round(v, 3) for k, v in gap.items()},
        "detector": measure_detector(models["standard"], calibration, x, y, args.seed),
        "astronaut": [float(p) for p in astronaut_probabilities(model)], "train_seconds": train_seconds, "command": command,
    }
    write_files_together({
        args.out: weights_writer(model, lambda: build_gender_cnn(VARIANT.filters, name="gender_cnn_distilled")),
        args.card: lambda temp: temp.write_text(model_card(report), encoding="utf-8"),
        args.facts: lambda temp: temp.write_text(facts_json(report), encoding="utf-8"),
    })
    print(json.dumps({k: report[k] for k in ("clean", "robust", "zero_grad", "gap", "detector")}, indent=1))
    print(f"trained in {train_seconds:.0f} s; wrote {args.out}, {args.card}, {args.facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
