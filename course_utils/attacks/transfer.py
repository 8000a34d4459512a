"""Black-box attacks by transfer: craft on a model you have, test on one you cannot see
(adversarial examples *transfer* between models trained for the same task, Szegedy et al., 2014).

- :func:`resized`, :func:`ensemble` -- a model fed pictures of another size (the resize inside, so
  gradients flow through it); several models as one substitute (the average of their logits);
- :func:`photo_variants` -- the sample photos plus seeded random crops and mirror images;
- :func:`top1`, :func:`transfer_table` -- how often the attacked pictures change another model's answer;
- a substitute grown from a black box's top-1 labels alone (Papernot et al., 2017; lesson 5 tells the
  procedure): :func:`oracle_labels` asks the target, :func:`jacobian_augment` is one step of
  Jacobian-based dataset augmentation, :func:`train_substitute` the whole seeded procedure.

Pixels 0..255 throughout; ``lam`` in grey levels (Papernot et al. used 0.1 of the pixel range).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
import keras
import tensorflow as tf

from course_utils.checks import (
    MAX_WORKING_BYTES, WrongTypeError, check_flag, check_int, check_memory, check_number, effective_seed,
)
from course_utils.io.images import as_batch
from course_utils.models.forward import cached, compiled_forward

__all__ = [
    "resized", "ensemble", "photo_variants", "top1", "transfer_table",
    "oracle_labels", "jacobian_augment", "train_substitute",
]


def resized(model: keras.Model, size: int | tuple[int, int], *, name: str | None = None) -> keras.Model:
    """``model`` taking ``size`` x ``size`` (or ``(height, width)``) pixels: a bilinear resize to its own
    input comes first, skipped when ``size`` already is it. The weights are shared, not copied."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    own_h, own_w, channels = model.input_shape[1:]
    pixels = keras.Input((h, w, channels), name="pixels")
    x = pixels if (h, w) == (own_h, own_w) else keras.layers.Resizing(own_h, own_w, interpolation="bilinear", name="resize")(pixels)
    return keras.Model(pixels, model(x), name=name or f"{model.name}_from_{h}px")


def ensemble(models: Sequence[keras.Model]) -> keras.Model:
    """One model whose logits are the average of ``models``' logits (classifiers with the same classes,
    e.g. EfficientNet-Lite0 and Lite1), all fed the same picture of the first model's input size; each
    other member resizes it to its own input inside."""
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    classes = {int(m.output_shape[-1]) for m in models}
    if len(classes) != 1:
        raise ValueError(f"the models must share their classes; their outputs have sizes {sorted(classes)}")
    size = int(models[0].input_shape[1])
    channels = int(models[0].input_shape[-1])
    pixels = keras.Input((size, size, channels), name="pixels")
    logits = [resized(m, size, name=f"member{i}_{m.name}")(pixels) for i, m in enumerate(models)]
    mean = keras.layers.Average(name="mean_logits")(logits)
    return keras.Model(pixels, mean, name="ensemble_" + "_".join(m.name for m in models))


def photo_variants(
    names: Sequence[str] | None = None,
    *,
    extra: int = 2,
    size: int = 224,
    seed: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """The sample photos, each followed by ``extra`` seeded random variants (``COURSE_SEED`` moves them).

    A variant is a random square crop (its side 0.6..1 times the photo's shorter side, anywhere in
    the photo), mirrored left-right with probability 1/2, resized to ``size``.

    Returns:
        ``(images, descriptions)``: float32 ``(len(names) * (1 + extra), size, size, 3)`` pixels
        0..255 and one short description per picture (e.g. ``"chelsea, crop 2, mirrored"``).
    """
    from course_utils.io.images import SAMPLE_IMAGES, load_image, sample_image

    names = list(SAMPLE_IMAGES if names is None else names)
    rng = np.random.default_rng(effective_seed(seed))
    images, descriptions = [], []
    for name in names:
        photo = load_image(sample_image(name))
        images.append(load_image(photo, size))
        descriptions.append(name)
        h, w = photo.shape[:2]
        for k in range(1, extra + 1):
            side = int(round(min(h, w) * rng.uniform(0.6, 1.0)))
            r0, c0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[r0 : r0 + side, c0 : c0 + side]
            mirrored = bool(rng.random() < 0.5)
            if mirrored:
                crop = crop[:, ::-1]
            images.append(load_image(np.ascontiguousarray(crop), size))
            descriptions.append(f"{name}, crop {k}" + (", mirrored" if mirrored else ""))
    return np.stack(images).astype(np.float32), descriptions


def top1(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's most probable class for each image ``(N, H, W, C)`` pixels 0..255, ``(N,)`` int64
    (no images, no classes), ``batch_size`` images per compiled call: the package's one top-1 helper."""
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if np.ndim(images) == 4 and len(images) == 0:
        return np.zeros(0, np.int64)
    x = as_batch(images, model)  # NaN/inf, pixels 0..255, the model's input size
    forward = compiled_forward(model, "label")
    return np.concatenate([forward(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)]).astype(np.int64)


def transfer_table(
    clean: np.ndarray,
    adversarial: np.ndarray,
    epsilons: Sequence[float] | np.ndarray,
    models: Mapping[str, keras.Model],
) -> pd.DataFrame:
    """How often attacked pictures change each model's answer, per budget.

    Args:
        clean: ``(N, H, W, C)`` the pictures before the attack.
        adversarial: ``(M * N, H, W, C)``: ``M`` attacked copies of ``clean`` stacked (one per budget).
        epsilons: ``(M,)`` the budget of each copy, or ``(M * N,)`` one per attacked picture.
        models: name -> model taking pictures of this size (wrap with :func:`resized`).

    Returns:
        One row per budget: ``epsilon`` and, per model, the share of pictures (0..1) whose top-1
        class differs from that model's top-1 on the clean picture.
    """
    clean = np.asarray(clean, np.float32)
    n = len(clean)
    if len(adversarial) % n:
        raise ValueError(f"{len(adversarial)} attacked pictures are not a whole number of copies of {n} clean ones")
    copies = len(adversarial) // n
    eps = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    if eps.size == copies * n:
        eps = eps.reshape(copies, n)[:, 0]
    if eps.size != copies:
        raise ValueError(f"got {eps.size} epsilons for {copies} attacked copies")
    table = pd.DataFrame({"epsilon": eps})
    for label, model in models.items():
        before = top1(model, clean)
        after = top1(model, adversarial).reshape(copies, n)
        table[label] = (after != before[None]).mean(axis=1)
    return table


def _labels(labels: Any, n: int, classes: int, what: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{what} must be one class index per picture, shape ({n},), got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise WrongTypeError(f"{what} must be whole class indices, got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= classes):
        raise ValueError(f"{what} must be class indices in 0..{classes - 1}, got values {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _jacobian_sign(model: keras.Model) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """``jacobian_sign(x, y)``: the sign of the gradient of each picture's logit of its label ``y``
    with respect to the picture, ``(N, H, W, C)`` in -1, 0, 1; compiled once per model."""
    ref = weakref.ref(model)  # kept in the model's own cache entry: it must not hold the model

    def build() -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        @tf.function(reduce_retracing=True)
        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                tape.watch(x)
                chosen = tf.gather(ref()(x, training=False), y, batch_dims=1)  # logit of each picture's label
            return tf.sign(tape.gradient(chosen, x))

        return step

    return cached(model, "jacobian sign", build)


def oracle_labels(oracle: Callable[[Any], Any], images: Any, *, batch_size: int = 256) -> np.ndarray:
    """The black box's top-1 answer ``(N,)`` int64 for each picture ``(N, H, W, C)`` pixels 0..255:
    one query per picture, ``batch_size`` per call. ``oracle``: a Keras model (called compiled) or any
    callable taking float32 ``(n, H, W, C)`` pixels and returning scores ``(n, K)`` (logits or
    probabilities: only their arg-max is used) or labels ``(n,)``."""
    batch_size = check_int("batch_size", batch_size, minimum=1)
    is_model = isinstance(oracle, keras.Model)
    x = as_batch(images, oracle if is_model else None)  # a model's input size is checked here
    call = compiled_forward(oracle, "logits") if is_model else oracle
    out = []
    for i in range(0, len(x), batch_size):
        answer = np.asarray(call(tf.constant(x[i : i + batch_size])))
        if answer.ndim == 2:
            answer = answer.argmax(-1)
        if answer.shape != (len(x[i : i + batch_size]),):
            raise ValueError(f"the oracle must return (n, K) scores or (n,) labels for n pictures, got shape {answer.shape}")
        out.append(answer.astype(np.int64))
    return np.concatenate(out)


def jacobian_augment(
    substitute: keras.Model,
    images: Any,
    labels: Any,
    lam: float,
    *,
    sign: int = 1,
) -> np.ndarray:
    """One step of Jacobian-based dataset augmentation: the *new* pictures (not the old ones).

    For each picture ``x`` with label ``y`` (the oracle's answer), the new picture is
    ``clip(x + sign * lam * sign(d substitute(x)[y] / dx), 0, 255)``: every pixel moves by exactly
    ``lam`` grey levels (unless clipped, or where the gradient is exactly 0) in the direction that
    raises (``sign=1``) or lowers (``sign=-1``) the substitute's logit of ``y``.

    Args:
        substitute: a Keras model, float32 ``(N, H, W, C)`` pixels 0..255 -> ``(N, K)`` logits.
        images: ``(N, H, W, C)`` pixels 0..255 (``(H, W, C)`` for one picture).
        labels: ``(N,)`` class indices, the oracle's labels of ``images``.
        lam: the step, grey levels, > 0.
        sign: ``1`` (towards the label) or ``-1`` (away from it; Papernot et al.'s periodic flip).

    Returns float32 ``(N, H, W, C)`` pixels 0..255; raises ``ValueError`` for an argument out of its
    range, no pictures, labels of the wrong shape or outside the model's classes.
    """
    lam = check_number("lam", lam, minimum=0.0, above=True)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"sign must be 1 (towards the label) or -1 (away from it), got {sign!r}")
    x = as_batch(images, substitute)
    y = _labels(labels, len(x), int(substitute.output_shape[-1]))
    step, b = _jacobian_sign(substitute), 256  # pictures per compiled call
    out = [x[i : i + b] + (sign * lam) * step(tf.constant(x[i : i + b]), tf.constant(y[i : i + b])).numpy()
           for i in range(0, len(x), b)]
    return np.clip(np.concatenate(out), 0.0, 255.0).astype(np.float32)


def _seeded_init(model: keras.Model, rng: np.random.Generator) -> None:
    """Glorot-uniform kernels and zero biases drawn from ``rng`` (no global random state)."""
    for variable in model.trainable_weights:
        shape = tuple(variable.shape)
        if len(shape) < 2:
            variable.assign(np.zeros(shape, np.float32))
            continue
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        variable.assign(rng.uniform(-limit, limit, shape).astype(np.float32))


def _check_rounds(rounds: int, shape: tuple) -> None:
    """Refuse ``rounds`` whose last set (``N * 2**(rounds - 1)`` pictures, float32, and its copy
    while it doubles) would not fit in :data:`~course_utils.checks.MAX_WORKING_BYTES`."""
    if len(shape) not in (3, 4):
        return  # the pictures' own check says what is wrong
    per = 3 * 4 * int(np.prod(shape[-3:])) * (shape[0] if len(shape) == 4 else 1)  # the set, its copy, the new half
    most = max(1, int(np.log2(max(MAX_WORKING_BYTES / max(per, 1), 1))) + 1)
    check_memory("rounds", rounds, per * 2.0 ** (rounds - 1), most,
                 f"the last round's set holds {shape[0] if len(shape) == 4 else 1} x 2**{rounds - 1} pictures "
                 f"of {' x '.join(map(str, shape[-3:]))} float32, the set doubling every round")


def train_substitute(
    oracle: Callable[[Any], Any],
    build: Callable[[], keras.Model],
    seed_images: Any,
    *,
    rounds: int = 6,
    epochs: int = 10,
    lam: float = 25.0,
    flip_every: int | None = 3,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    eval_images: Any = None,
    seed: int = 0,
    verbose: bool = False,
) -> tuple[keras.Model, pd.DataFrame]:
    """Grow a substitute from the oracle's labels alone (Papernot et al., 2017), seeded.

    Each round: ask the oracle the labels of the pictures not labelled yet, train the substitute
    ``epochs`` passes over the whole set (Adam, cross-entropy, from the last round's weights) and,
    except after the last round, add one :func:`jacobian_augment` picture per picture (the set
    doubles), the sign of ``lam`` flipped for ``flip_every`` rounds after every ``flip_every`` rounds
    (Papernot et al.'s periodic step; ``None`` never flips).

    Args:
        oracle: the black box (see :func:`oracle_labels`): only its top-1 labels are used.
        build: returns a fresh, untrained Keras model ``(N, H, W, C)`` pixels 0..255 -> ``(N, K)``
            logits (e.g. ``lambda: build_gender_cnn((6, 12, 24))``); its weights are re-drawn from
            ``seed`` (Glorot-uniform kernels, zero biases).
        seed_images: ``(N, H, W, C)`` pixels 0..255, the attacker's unlabelled pictures (N >= 1).
        rounds, epochs: rounds of label-train-augment, passes over the set per round (each >= 1);
            the last set holds ``N * 2**(rounds - 1)`` pictures.
        lam: the augmentation step, grey levels (> 0); ``flip_every``: >= 1, or ``None``.
        learning_rate, batch_size: Adam's step size (> 0), pictures per training step (>= 1).
        eval_images: optional ``(M, H, W, C)`` pictures on which to measure, after each round, the
            share on which substitute and oracle agree (asked once; the teacher's measurement, not
            counted as the attacker's queries).
        seed: seeds the weights and the shuffling (``COURSE_SEED`` moves it).
        verbose: print one line per round.

    Returns:
        ``(substitute, history)``: the trained model and a DataFrame with one row per round:
        ``round`` (1..rounds), ``set_size`` (pictures trained on), ``queries`` (oracle queries so
        far), ``lam`` (signed step of the augmentation after this round, 0 after the last),
        ``train_agreement`` (on the training set) and, with ``eval_images``, ``agreement``.

    Raises:
        ValueError: an argument out of its range above, no seed pictures, pictures the model does
            not take, a ``build`` that is not a function making a fresh model (``WrongTypeError``).
    """
    rounds = check_int("rounds", rounds, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    lam = check_number("lam", lam, minimum=0.0, above=True)
    if flip_every is not None:
        flip_every = check_int("flip_every", flip_every, minimum=1)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0, above=True)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    verbose = check_flag("verbose", verbose)
    seed = effective_seed(seed)
    if isinstance(build, keras.Model) or not callable(build):
        raise WrongTypeError(f"build must be a function returning a fresh, untrained Keras model (e.g. "
                             f"lambda: build_gender_cnn((6, 12, 24))), got {type(build).__name__}")
    _check_rounds(rounds, np.shape(seed_images))
    model = build()
    if not isinstance(model, keras.Model):
        raise WrongTypeError(f"build() must return a Keras model, got {type(model).__name__}")
    if model is oracle or any(model is getattr(oracle, a, None) for a in ("model", "_model")):
        raise ValueError("build() returned the oracle itself: train_substitute would re-draw and train the target's "
                         "own weights. build must make a fresh model each call, e.g. lambda: build_gender_cnn((6, 12, 24))")
    x = as_batch(seed_images, model)
    x_eval = y_eval = None
    if eval_images is not None:
        x_eval = as_batch(eval_images, model)
        y_eval = oracle_labels(oracle, x_eval)

    rng = np.random.default_rng(seed)
    _seeded_init(model, rng)
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def train_step(x: tf.Tensor, y: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    y = np.zeros(0, np.int64)
    queries = 0
    rows = []
    for r in range(1, rounds + 1):
        new = x[len(y):]
        y = np.concatenate([y, oracle_labels(oracle, new)])  # ask only about the pictures not asked yet
        queries += len(new)
        for _ in range(epochs):
            order = rng.permutation(len(y))
            for i in range(0, len(order), batch_size):
                take = order[i : i + batch_size]
                train_step(tf.constant(x[take]), tf.constant(y[take]))
        step = 0.0
        if r < rounds:
            flip = flip_every is not None and ((r - 1) // flip_every) % 2 == 1
            step = -lam if flip else lam
            x = np.concatenate([x, jacobian_augment(model, x, y, lam, sign=-1 if flip else 1)])
        row = {"round": r, "set_size": len(y), "queries": queries, "lam": step,
               "train_agreement": float(np.mean(oracle_labels(model, x[: len(y)]) == y))}
        if x_eval is not None:
            row["agreement"] = float(np.mean(oracle_labels(model, x_eval) == y_eval))
        rows.append(row)
        if verbose:
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return model, pd.DataFrame(rows)
