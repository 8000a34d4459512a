"""The tutorial-style loops the course is measured against.

The original tutorials run their optimisation one step at a time from Python. Each function here
re-implements that loop structure faithfully, while computing the *same thing* as the course
function it is compared with (same model, same start, same objective, step rule, constraints and
step count), so a ratio measures the loop and nothing else. The benchmark report checks that the
outputs agree (``check`` columns).

- :func:`eager_noise_filter` (lesson 1): a ``tf.Variable`` ``DX``, an eager ``tf.GradientTape``
  step per Python iteration and ``optimizer.apply_gradients`` (Keras SGD). No ``tf.function``.
- :func:`eager_iterative_attack` (lesson 2): per step an eager forward/backward, a sign step, the
  clips, and the step's probabilities fetched to the host with ``.numpy()`` as the tutorials do
  to print or plot them (a host sync per step).
- :func:`compiled_input_gradient`: one bare compiled forward+backward (the floor for one step of
  lesson 2), to compare the course's per-step time with.
- :class:`BlogFilterVisualizer` (lesson 3, filters): the Keras blog's ``@tf.function
  gradient_ascent_step(img, filter_index, learning_rate)`` called from a Python loop per step,
  one filter at a time (``filter_index`` is a Python int, so it traces once per filter).
- :class:`BackendFunctionClassMaximizer` (lesson 3, classes): the Keras-backend-function style,
  ``loss, grads = iterate([x])`` returning NumPy arrays every step, the update done in NumPy.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "eager_noise_filter",
    "eager_iterative_attack",
    "compiled_input_gradient",
    "BlogFilterVisualizer",
    "BackendFunctionClassMaximizer",
]


def eager_noise_filter(
    model: keras.Model,
    image: np.ndarray,
    target: int,
    *,
    beta: float,
    steps: int,
    learning_rate: float,
    clip: bool = True,
) -> np.ndarray:
    """Lesson 1's loop, eager: learn ``DX`` so that ``model(image + DX)`` says ``target``.

    Minimises ``CE(target) + beta * l2_loss(DX)`` (``l2_loss = sum(DX**2) / 2``) with Keras SGD, one
    eager ``GradientTape`` step per Python iteration. With ``clip`` the filtered face is kept in
    0..255 after each step, as :func:`course_utils.attacks.noise_filter` does by default.

    Args:
        image: ``(1, H, W, C)`` float32 pixels.
        target: the class index to reach.

    Returns:
        The filtered face ``image + DX``, ``(1, H, W, C)``.
    """
    x0 = tf.constant(image, tf.float32)
    dx = tf.Variable(tf.zeros_like(x0), name="DX")
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    labels = tf.fill([x0.shape[0]], target)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            logits = model(x0 + dx, training=False)
            ce = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            loss = ce + beta * tf.nn.l2_loss(dx)
        grads = tape.gradient(loss, [dx])
        optimizer.apply_gradients(zip(grads, [dx]))
        if clip:
            dx.assign(tf.clip_by_value(x0 + dx, 0.0, 255.0) - x0)
        losses.append(loss)
    return (x0 + dx).numpy()


def eager_iterative_attack(
    model: keras.Model,
    images: np.ndarray,
    target: int,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Lesson 2's loop, eager: ``steps`` signed-gradient steps towards ``target``, clipped to the
    L-inf ball of ``epsilon`` pixels and to 0..255.

    Per step: a forward/backward under ``tf.GradientTape``, the sign step, the two clips, and the
    step's probabilities fetched with ``.numpy()`` (a host sync per step, as the tutorials do).

    Returns:
        ``(adversarial (N, H, W, C), probabilities (steps, N, classes))``.
    """
    x0 = tf.constant(images, tf.float32)
    labels = tf.fill([x0.shape[0]], target)
    x = x0
    history = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x, training=False)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        grad = tape.gradient(loss, x)
        history.append(tf.nn.softmax(logits).numpy())
        x = x - step_size * tf.sign(grad)
        x = tf.clip_by_value(x, x0 - epsilon, x0 + epsilon)
        x = tf.clip_by_value(x, 0.0, 255.0)
    return x.numpy(), np.stack(history)


def compiled_input_gradient(model: keras.Model, images: np.ndarray, target: int) -> Callable[[], float]:
    """One bare compiled forward+backward: the cross-entropy gradient with respect to the input.

    Returns a zero-argument function that runs it once on ``images`` (the same batch each call)
    and waits for it. It fetches only the sum of the gradient, so on a GPU the host waits for the
    result without copying the whole gradient back. The first call traces the graph.
    """
    x = tf.constant(images, tf.float32)
    labels = tf.fill([x.shape[0]], target)

    @tf.function
    def gradient_sum(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=model(x, training=False))
        return tf.reduce_sum(tape.gradient(loss, x))

    return lambda: float(gradient_sum(x).numpy())


def feature_extractor(model: keras.Model, layer: str) -> keras.Model:
    """``model``'s layers up to ``layer``, on inputs of any height and width (weights shared).

    The Keras blog builds ``keras.Model(model.inputs, layer.output)`` from a network created
    without a fixed input size; for a network built at 224x224 the same sub-model is rebuilt on a
    ``(None, None, C)`` input.
    """
    sub = keras.Model(model.input, model.get_layer(layer).output)
    channels = model.input_shape[-1]
    return keras.models.clone_model(sub, input_tensors=keras.Input((None, None, channels)), clone_function=lambda l: l)


def _rms_normalised(grad: tf.Tensor | np.ndarray) -> tf.Tensor | np.ndarray:
    """The gradient divided by its root-mean-square (what the course's ``"rms"`` step rule does)."""
    if isinstance(grad, np.ndarray):
        return grad / (np.sqrt(np.mean(np.square(grad))) + 1e-8)
    return grad / (tf.sqrt(tf.reduce_mean(tf.square(grad))) + 1e-8)


class BlogFilterVisualizer:
    """The Keras blog's filter visualisation loop ("Visualizing what convnets learn").

    Built once (like the blog's module-level ``feature_extractor`` and ``gradient_ascent_step``);
    :meth:`run` then optimises one image per filter, one filter at a time, calling the compiled
    step once per step from Python. As in the blog, ``filter_index`` and ``learning_rate`` are
    Python numbers, so the step is traced once per filter index (the first time it is seen).

    The objective and step are the course's (mean activation over all positions, step divided by
    the gradient's RMS, pixels clipped to 0..255), so the pictures match
    :func:`course_utils.vis.visualize.maximize_filters`.
    """

    def __init__(self, model: keras.Model, layer: str) -> None:
        self.extractor = feature_extractor(model, layer)
        self.channels = model.input_shape[-1]

        @tf.function
        def gradient_ascent_step(img: tf.Tensor, filter_index: int, learning_rate: float) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(img)
                loss = tf.reduce_mean(self.extractor(img, training=False)[..., filter_index])
            grads = _rms_normalised(tape.gradient(loss, img))
            img = tf.clip_by_value(img + learning_rate * grads, 0.0, 255.0)
            return loss, img

        self.gradient_ascent_step = gradient_ascent_step

    def visualize_filter(self, filter_index: int, start: np.ndarray, steps: int, learning_rate: float) -> np.ndarray:
        """Optimise one image ``start`` ``(1, H, W, C)`` for filter ``filter_index``; return it."""
        img = tf.constant(start, tf.float32)
        for _ in range(steps):
            loss, img = self.gradient_ascent_step(img, filter_index, learning_rate)
        return img.numpy()

    def run(self, filters: Sequence[int], starts: np.ndarray, steps: int, learning_rate: float) -> np.ndarray:
        """One image per filter from ``starts`` ``(N, H, W, C)``, filter after filter; ``(N, H, W, C)``."""
        return np.concatenate(
            [self.visualize_filter(int(f), starts[i : i + 1], steps, learning_rate) for i, f in enumerate(filters)]
        )


class BackendFunctionClassMaximizer:
    """Class maximisation in the Keras-backend-function style of the early tutorials.

    ``iterate = K.function([model.input], [loss, grads])`` becomes a compiled function built once
    here; :meth:`run` calls it once per step from Python with a NumPy image, gets NumPy ``loss`` and
    ``grads`` back (a host round trip per step) and does the update in NumPy. The step is the
    course's: the gradient of the class logit divided by its RMS, pixels clipped to 0..255.
    """

    def __init__(self, model: keras.Model) -> None:
        @tf.function
        def loss_and_grads(x: tf.Tensor, class_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.gather(model(x, training=False), class_index, axis=1))
            return loss, tape.gradient(loss, x)

        def iterate(inputs: list[np.ndarray], class_index: int) -> list[np.ndarray]:
            loss, grads = loss_and_grads(tf.constant(inputs[0]), tf.constant(class_index, tf.int32))
            return [loss.numpy(), grads.numpy()]

        self.iterate = iterate

    def run(self, class_index: int, start: np.ndarray, steps: int, step_size: float) -> np.ndarray:
        """``steps`` gradient-ascent steps on the logit of ``class_index`` from ``start`` ``(1, H, W, C)``."""
        x = np.array(start, dtype=np.float32)
        for _ in range(steps):
            loss_value, grads_value = self.iterate([x], class_index)
            x += step_size * _rms_normalised(grads_value)
            np.clip(x, 0.0, 255.0, out=x)
        return x
