"""Black-box attacks by transfer: craft on a model you have, test on one you cannot see.

- :func:`resized` -- a model that takes pictures of one size and resizes them to its own input
  inside (EfficientNet-Lite0 sees 224 px, Lite1 240, Lite2 260): attacks crafted at 224 px can
  then be sent to any of them, and gradients flow through the resize.
- :func:`ensemble` -- several models as one substitute: the average of their logits.
- :func:`photo_variants` -- the offline sample photos plus seeded random crops and mirror images,
  to measure a rate on more than four pictures.
- :func:`top1`, :func:`transfer_table` -- how often the attacked pictures change another model's answer.

A substitute grown from a black box's answers (Papernot et al., 2017). The attacker sees only the
target's top-1 *label* for a picture it sends, and holds a handful of unlabelled pictures of the
right kind. It trains its own network, the *substitute*, in rounds:

1. ask the target (the *oracle*) to label every picture of the set not labelled yet (queries);
2. train the substitute on the set with those labels;
3. **Jacobian-based dataset augmentation**: add, for every picture ``x`` of the set with oracle
   label ``y``, the new picture ``x + lam * sign(d logit_y / dx)`` computed on the *substitute*:
   a step along the direction in which the substitute's score for ``y`` changes fastest. With
   ``lam > 0`` it *raises* that score, so the new picture lies further inside class ``y`` as the
   substitute sees it (the substitute is surer of it, not less sure). The target's answer on it
   shows the substitute how the target's output changes along that direction (Papernot et al.:
   sampling the directions in which the model's output varies). The set doubles.

Papernot et al. also flip the sign of ``lam`` periodically (a step *away* from the label every
few rounds, towards and across the boundary), so the new points do not all drift away from the
seed pictures in one direction.
Then the substitute is attacked white-box (PGD, FGSM; :mod:`course_utils.attacks.pgd`) and the
result is sent to the target: adversarial examples *transfer* between models trained for the same
task (Szegedy et al., 2014).

- :func:`oracle_labels` -- the top-1 labels of a black box, batched (``(N,)`` int64).
- :func:`jacobian_augment` -- one augmentation step (a compiled, batched GradientTape).
- :func:`train_substitute` -- the whole seeded procedure; returns the model and a per-round history.

Pixels 0..255 throughout; ``lam`` in grey levels (Papernot et al. used 0.1 of the pixel range,
about 25 grey levels).
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
    MAX_WORKING_BYTES, WrongTypeError, check_batch, check_flag, check_int, check_memory, check_number, effective_seed,
)
from course_utils.io.images import as_batch
from course_utils.models.forward import cached, compiled_forward

__all__ = [
    "resized", "ensemble", "photo_variants", "top1", "transfer_table",
    "oracle_labels", "jacobian_augment", "train_substitute",
]


def resized(model: keras.Model, size: int | tuple[int, int], *, name: str | None = None) -> keras.Model:
    """``model`` taking ``size`` x ``size`` pixels: a bilinear resize to its own input comes first.

    The weights are shared, not copied. When ``size`` already is the model's input, the resize
    is skipped.
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    own_h, own_w, channels = model.input_shape[1:]
    pixels = keras.Input((h, w, channels), name="pixels")
    x = pixels if (h, w) == (own_h, own_w) else keras.layers.Resizing(own_h, own_w, interpolation="bilinear", name="resize")(pixels)
    return keras.Model(pixels, model(x), name=name or f"{model.name}_from_{h}px")


def ensemble(models: Sequence[keras.Model], *, size: int | None = None, name: str | None = None) -> keras.Model:
    """One model whose logits are the average of ``models``' logits, all fed the same picture.

    Args:
        models: classifiers with the same classes (e.g. EfficientNet-Lite0 and Lite1).
        size: the input size of the ensemble; each member resizes to its own input inside.
            Default: the first model's.
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    classes = {int(m.output_shape[-1]) for m in models}
    if len(classes) != 1:
        raise ValueError(f"the models must share their classes; their outputs have sizes {sorted(classes)}")
    size = size or int(models[0].input_shape[1])
    channels = int(models[0].input_shape[-1])
    pixels = keras.Input((size, size, channels), name="pixels")
    logits = [resized(m, size, name=f"member{i}_{m.name}")(pixels) for i, m in enumerate(models)]
    mean = keras.layers.Average(name="mean_logits")(logits)
    return keras.Model(pixels, mean, name=name or "ensemble_" + "_".join(m.name for m in models))


def photo_variants(
    names: Sequence[str] | None = None,
    *,
    extra: int = 2,
    size: int = 224,
    seed: int = 0,
    smallest: float = 0.6,
) -> tuple[np.ndarray, list[str]]:
    """The sample photos, each followed by ``extra`` seeded random variants.

    A variant is a random square crop (its side ``smallest``..1 times the photo's shorter
    side, anywhere in the photo), mirrored left-right with probability 1/2, resized to ``size``.

    Returns:
        ``(images, descriptions)``: float32 ``(len(names) * (1 + extra), size, size, 3)`` pixels
        0..255 and one short description per picture (e.g. ``"chelsea, crop 2, mirrored"``).
    """
    from course_utils.io.images import SAMPLE_IMAGES, load_image, sample_image

    names = list(SAMPLE_IMAGES if names is None else names)
    if not 0 < smallest <= 1:
        raise ValueError(f"smallest must be in (0, 1], got {smallest!r}")
    rng = np.random.default_rng(effective_seed(seed))  # plus COURSE_SEED (course_utils.checks)
    images, descriptions = [], []
    for name in names:
        photo = load_image(sample_image(name))
        images.append(load_image(photo, size))
        descriptions.append(name)
        h, w = photo.shape[:2]
        for k in range(1, extra + 1):
            side = int(round(min(h, w) * rng.uniform(smallest, 1.0)))
            r0, c0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[r0 : r0 + side, c0 : c0 + side]
            mirrored = bool(rng.random() < 0.5)
            if mirrored:
                crop = crop[:, ::-1]
            images.append(load_image(np.ascontiguousarray(crop), size))
            descriptions.append(f"{name}, crop {k}" + (", mirrored" if mirrored else ""))
    return np.stack(images).astype(np.float32), descriptions


def top1(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's most probable class for each image ``(N, H, W, C)`` pixels 0..255, ``(N,)`` int64."""
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
    """The black box's top-1 answer for each picture: one query per picture.

    Args:
        oracle: the target. A Keras model or any callable taking float32 ``(n, H, W, C)`` pixels
            0..255 and returning either scores ``(n, K)`` (logits or probabilities: only their
            arg-max is used) or labels ``(n,)``. A Keras model is called inside a compiled
            ``tf.function``.
        images: ``(N, H, W, C)`` pixels 0..255.
        batch_size: pictures per call.

    Returns:
        ``(N,)`` int64 class indices.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    is_model = isinstance(oracle, keras.Model)
    x = check_batch(as_batch(images, oracle if is_model else None))  # a model's input size is checked here
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
    batch_size: int = 256,
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
        batch_size: pictures per compiled call.

    Returns:
        float32 ``(N, H, W, C)`` pixels 0..255.

    Raises:
        ValueError: ``lam <= 0``, ``sign`` not 1 or -1, no pictures, labels of the wrong shape or
            outside the model's classes, pictures the model does not take.
    """
    lam = check_number("lam", lam, minimum=0.0, above=True)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"sign must be 1 (towards the label) or -1 (away from it), got {sign!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    x = check_batch(as_batch(images, substitute))
    y = _labels(labels, len(x), int(substitute.output_shape[-1]))
    step = _jacobian_sign(substitute)
    out = [np.clip(x[i : i + batch_size] + (sign * lam) * step(tf.constant(x[i : i + batch_size]),
                                                              tf.constant(y[i : i + batch_size])).numpy(), 0.0, 255.0)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32)


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


def _trainer(model: keras.Model, learning_rate: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return train_step


def _agreement(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    return float(np.mean(oracle_labels(model, x, batch_size=batch_size) == y))


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

    Each round: query the oracle for the labels of the pictures not labelled yet, train the
    substitute ``epochs`` passes over the whole set (Adam, cross-entropy on the oracle's labels,
    continuing from the last round's weights), and, except after the last round, add one
    :func:`jacobian_augment` picture per picture of the set (the set doubles). The step is
    ``lam``, with its sign flipped for ``flip_every`` rounds after every ``flip_every`` rounds
    (Papernot et al.'s periodic step size; ``None`` never flips).

    Args:
        oracle: the black box (see :func:`oracle_labels`): only its top-1 labels are used.
        build: returns a fresh, untrained Keras model ``(N, H, W, C)`` pixels 0..255 -> ``(N, K)``
            logits (e.g. ``lambda: build_gender_cnn((6, 12, 24))``). Its weights are re-drawn
            from ``seed`` (Glorot-uniform kernels, zero biases).
        seed_images: ``(N, H, W, C)`` pixels 0..255, the attacker's unlabelled pictures (N >= 1).
        rounds: rounds of label-train-augment (>= 1); the last set holds ``N * 2**(rounds - 1)``.
        epochs: training passes over the set per round (>= 1).
        lam: the augmentation step, grey levels (> 0).
        flip_every: flip the sign of ``lam`` every this many rounds (>= 1), or ``None``.
        learning_rate: Adam's step size (> 0).
        batch_size: pictures per training step (>= 1).
        eval_images: optional ``(M, H, W, C)`` pictures on which to measure, after each round, the
            share on which substitute and oracle agree. Their oracle labels are asked once and not
            counted as the attacker's queries (it is the teacher's measurement, not the attack's).
        seed: seeds the weights and the shuffling (through ``COURSE_SEED``,
            :func:`course_utils.checks.effective_seed`).
        verbose: print one line per round.

    Returns:
        ``(substitute, history)``: the trained model and a DataFrame with one row per round:
        ``round`` (1..rounds), ``set_size`` (pictures trained on), ``queries`` (oracle queries so
        far), ``lam`` (signed step of the augmentation after this round, 0 after the last),
        ``train_agreement`` (on the training set) and, with ``eval_images``, ``agreement``.

    Raises:
        ValueError: rounds, epochs or batch size not whole numbers >= 1, ``lam`` or the learning
            rate <= 0, a bad ``flip_every``, no seed pictures, pictures the model does not take.
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
    x = check_batch(as_batch(seed_images, model), "seed_images")
    x_eval = y_eval = None
    if eval_images is not None:
        x_eval = check_batch(as_batch(eval_images, model), "eval_images")
        y_eval = oracle_labels(oracle, x_eval)

    rng = np.random.default_rng(seed)
    _seeded_init(model, rng)
    train_step = _trainer(model, learning_rate)
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
               "train_agreement": _agreement(model, x[: len(y)], y, 256)}
        if x_eval is not None:
            row["agreement"] = _agreement(model, x_eval, y_eval, 256)
        rows.append(row)
        if verbose:
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return model, pd.DataFrame(rows)
