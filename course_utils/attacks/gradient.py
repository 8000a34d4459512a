"""Adversarial examples: small changes to a photo that change a classifier's answer.

Every attack here is a thin wrapper over :class:`course_utils.core.loop.GradientLoop` and
returns an :class:`AttackResult` (in the spirit of Foolbox: a model, inputs, a criterion, a
budget; the result says success per example). The objective is
:class:`~course_utils.core.objectives.CrossEntropy`; the budget an after-step piece
(:class:`~course_utils.core.steps.LinfBall`); the noise filter's price a penalty
(:class:`~course_utils.core.penalties.L2Penalty`). Targets, epsilon and beta enter the compiled loop
per call, so a sweep over budgets or targets traces it once.

Units: images are float32 **pixels 0..255**, ``(N, H, W, C)`` (one image ``(H, W, C)`` is
accepted too); ``epsilon``, ``step_size``, ``delta`` and the norms are in pixels, so
``epsilon=4.0`` allows each pixel to move by four grey levels.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from course_utils.checks import WrongTypeError, check_batch, check_flag, check_number, check_steps
from course_utils.core.history import LoopResult, check_history, history_frame
from course_utils.io.images import ImageLoadError, as_batch
from course_utils.models.labels import ClassNames, Target
from course_utils.core.objectives import CrossEntropy, weak
from course_utils.core.cache import loop_for
from course_utils.core.penalties import L2Penalty
from course_utils.core.steps import LinfBall, PixelRange
from course_utils.attacks.result import AttackResult

__all__ = [
    "input_gradient",
    "fgsm",
    "iterative_attack",
    "noise_filter",
]

# --------------------------------------------------------------------------- shared plumbing


def _batch(images: np.ndarray, model: keras.Model) -> np.ndarray:
    """The images as a checked, non-empty float32 batch for ``model``."""
    return check_batch(as_batch(images, model))


def _tracked(track: Sequence[Target], classes: ClassNames) -> list[int]:
    """The extra classes to record, resolved before anything is traced."""
    return [] if isinstance(track, (list, tuple)) and not track else classes.indices(track, name="track")


def _cross_entropy_loop(model: keras.Model, targeted: bool, step_rule: str, pieces: tuple, jit_compile: bool = False):
    """The model's cached loop for a cross-entropy attack of this structure (targets, budget and
    beta come per call)."""
    return loop_for(model, CrossEntropy(weak(model), targeted), step_rule=step_rule, regularizers=pieces,
                    jit_compile=jit_compile)


def _result(
    method: str,
    x0: np.ndarray,
    loop: LoopResult,
    targets: np.ndarray,
    targeted: bool,
    epsilon: float | None,
    track: Sequence[int],
    classes: ClassNames,
) -> AttackResult:
    probs = loop.tracked
    top1 = probs.argmax(-1)  # (steps + 1, N)
    hit = top1 == targets[None] if targeted else top1 != targets[None]
    first = np.where(hit.any(0), hit.argmax(0), -1)
    delta = (loop.x - x0).reshape(len(x0), -1)
    items = [(i, c) for i in range(len(x0)) for c in dict.fromkeys([int(targets[i]), int(top1[0, i]), *track])]
    image, cls = (np.asarray(v, dtype=np.int64) for v in zip(*items))
    history = history_frame(
        len(probs), image=image, loss=loop.losses[:, image], class_index=cls,
        label=np.asarray([classes.label(c) for c in cls], dtype=object), probability=probs[:, image, cls],
    )
    return AttackResult(
        method=method,
        original=x0,
        adversarial=loop.x,
        target=targets,
        targeted=targeted,
        original_class=top1[0],
        adversarial_class=top1[-1],
        success=hit[-1],
        steps_to_success=first,
        linf=np.abs(delta).max(1),
        l2=np.sqrt((delta.astype(np.float64) ** 2).sum(1)).astype(np.float32),
        epsilon=epsilon,
        probabilities=probs,
        losses=loop.losses,
        history=history,
        seconds=loop.seconds,
        compile_seconds=loop.compile_seconds,
        traces=loop.traces,
        classes=classes,
    )


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False)).argmax(-1)


# --------------------------------------------------------------------------- public attacks


def input_gradient(model: keras.Model, images: np.ndarray, target: Target | Sequence[Target]) -> np.ndarray:
    """The gradient of ``log p(target)`` with respect to the input pixels.

    Args:
        model: a classifier giving logits, taking pixels 0..255.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        target: a class (an index or one of the model's class names), or one per image. Required:
            there is no default class.

    Returns:
        ``(N, H, W, C)`` float32: how much the log-probability changes per pixel of change. It has
        the photo's shape; a positive value means "brighter here makes ``target`` more likely".
    """
    if target is None:
        raise WrongTypeError(
            "input_gradient needs a target class (the gradient of log p(target) is taken for one class); "
            "name it, e.g. target='king penguin' or target=0"
        )
    x = tf.constant(_batch(images, model))
    targets = np.asarray(ClassNames.of(model).indices(target, len(x)), dtype=np.int64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logp = tf.nn.log_softmax(model(x, training=False))
        chosen = tf.gather(logp, targets, batch_dims=1)
    return tape.gradient(chosen, x).numpy()


def fgsm(
    model: keras.Model,
    images: np.ndarray,
    target: Target | Sequence[Target] | None,
    epsilon: float,
    *,
    targeted: bool = True,
    track: Sequence[Target] = (),
) -> AttackResult:
    """The fast gradient sign method: one step of ``epsilon * sign(gradient)``, clipped to 0..255.

    Args:
        model: a classifier giving logits, taking pixels 0..255.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        target: the class to reach (targeted) or to leave (untargeted; there ``None`` means the
            model's own answer). An index or one of the model's class names, or one per image.
        epsilon: the step in pixels (>= 0): every pixel moves by exactly this much (before clipping).
        targeted: step towards ``target`` (True) or away from it.
        track: extra classes whose probability the history records.
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0)
    return iterative_attack(
        model, images, target, epsilon, steps=1, step_size=max(epsilon, 1e-12), targeted=targeted,
        track=track, progress=False, _method="fgsm",
    )


def iterative_attack(
    model: keras.Model,
    images: np.ndarray,
    target: Target | Sequence[Target] | None,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    targeted: bool = True,
    *,
    track: Sequence[Target] = (),
    progress: bool | None = None,
    _method: str = "iterative_attack",
) -> AttackResult:
    """The iterative (basic iterative / projected sign-gradient) attack.

    Each step recomputes the gradient of the cross-entropy, moves every pixel by ``step_size``
    in the direction of its sign, then clips to the L-inf ball of radius ``epsilon`` around the
    original and to valid pixels 0..255. Runs on the whole batch at once.

    Args:
        model: a classifier giving logits, taking pixels 0..255.
        images: ``(H, W, C)`` or ``(N, H, W, C)`` pixels 0..255.
        target: the class to reach (targeted) or to leave (untargeted). An index or one of the
            model's class names (ImageNet names; ``"man"``/``"woman"`` for the face model), or one
            per image. ``None`` means "the model's own answer" and so only makes sense with
            ``targeted=False`` (leave whatever class the model sees now); a targeted attack
            without a target is refused.
        epsilon: the L-inf budget in pixels (>= 0).
        steps: number of steps (>= 1).
        step_size: pixels per step (> 0). ``None`` (the default) means ``2.5 * epsilon / steps``,
            the rule of thumb of the MadryLab robustness library (Engstrom et al., 2019): over
            all steps the pixels could travel 2.5 times the budget, enough to cross the L-inf ball and come back, whatever ``steps`` is. Kurakin
            et al. (2017), who introduced the attack, use 1 grey level per step instead
            (``step_size=1.0``, with ``min(epsilon + 4, 1.25 * epsilon)`` steps).
        targeted: towards ``target`` (True) or away from it (False).
        track: extra classes whose probability the history records (e.g. ``["mouse"]``).
        progress: show a progress bar (``None``: for 50 steps or more).
    """
    epsilon = check_number("epsilon", epsilon, minimum=0.0)
    steps = check_steps(steps)
    if step_size is None:
        step_size = 2.5 * epsilon / steps
    else:
        step_size = check_number("step_size", step_size, minimum=0.0, above=True)
    targeted = check_flag("targeted", targeted)
    if target is None and targeted:
        raise ValueError(
            "target=None needs targeted=False: a targeted attack needs a class to reach (name one, e.g. "
            "'king penguin'); with targeted=False, None means 'leave the class the model sees now'"
        )
    x0 = _batch(images, model)
    classes = ClassNames.of(model)
    extra = _tracked(track, classes)
    if target is None:
        targets = _predict(model, x0).astype(np.int64)
    else:
        targets = np.asarray(classes.indices(target, len(x0)), dtype=np.int64)
    check_history(steps, len(x0), classes.count)
    loop = _cross_entropy_loop(model, targeted, "sign", (LinfBall(), PixelRange())).run(
        x0, {"labels": targets, "epsilon": epsilon}, steps=steps, step_size=max(step_size, 1e-12),
        progress=progress, description=_method,
    )
    return _result(_method, x0, loop, targets, targeted, epsilon, extra, classes)


def noise_filter(
    model: keras.Model,
    image: np.ndarray,
    target: Target,
    beta: float | Sequence[float] = 0.0,
    steps: int = 1000,
    learning_rate: float = 0.1,
    *,
    clip: bool = True,
    progress: bool | None = None,
    jit_compile: bool = False,
) -> AttackResult:
    """Learn a noise image ``DX`` that, added to ``image``, makes the model answer ``target``.

    Minimises ``cross_entropy(model(image + DX), target) + beta * sum(DX**2) / 2`` by plain
    gradient descent from ``DX = 0`` (the tutorial's noise filter). ``beta > 0`` prices every
    grey level of change, so the filter stays fainter.

    Args:
        model: the face classifier (:func:`course_utils.models.load_gender_cnn`), taking
            ``(N, 48, 48, 1)`` pixels 0..255 and giving 2 logits (0 = man, 1 = woman).
        image: ``(48, 48)``, ``(48, 48, 1)`` or a batch ``(N, 48, 48, 1)``, pixels 0..255.
        target: ``"man"``, ``"woman"``, 0 or 1 (the same names every attack takes for this model).
        beta: weight of the L2 penalty (>= 0), per squared pixel. A list of ``B`` betas runs ``B``
            filters side by side in one batch (one image, or one per beta), e.g. for a trade-off curve.
            Gradient descent on the penalty is stable only while ``learning_rate * beta < 2``.
        steps: gradient steps (>= 1).
        learning_rate: gradient-descent rate, in pixels per unit of gradient (> 0).
        clip: keep ``image + DX`` within valid pixels 0..255 after each step.
        progress: show a progress bar (``None``: for 50 steps or more).
        jit_compile: compile each step with XLA. Off by default: the compilation (a couple of
            seconds on the first call) costs more than it saves on a short run of this tiny model.
    """
    beta_list = list(beta) if isinstance(beta, (list, tuple, np.ndarray)) else [beta]
    if not beta_list:
        raise ValueError("beta is empty: give one beta, or a list of them")
    betas = np.asarray([check_number("beta", b, minimum=0.0) for b in beta_list], dtype=np.float32)
    steps = check_steps(steps)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0, above=True)
    clip = check_flag("clip", clip)
    jit_compile = check_flag("jit_compile", jit_compile)
    if learning_rate * betas.max() >= 2.0:
        raise ValueError(
            f"learning_rate * beta = {learning_rate * betas.max():g} must stay below 2: the penalty's "
            "gradient step would overshoot and DX would grow without end. Lower the learning rate or beta."
        )
    classes = ClassNames.of(model)
    t = classes.index(target)
    x0 = np.asarray(image, dtype=np.float32)
    if x0.ndim == 2:
        x0 = x0[..., None]
    if x0.ndim == 3:
        x0 = x0[None]
    if x0.ndim != 4 or x0.shape[1:] != (48, 48, 1):
        raise ImageLoadError(
            f"the face model takes 48x48 grayscale images, got shape {np.shape(image)}; "
            "make one with load_image(photo, size=48, mode='gray') (or sample_face('astronaut'))"
        )
    x0 = _batch(x0, model)
    if len(betas) > 1 and len(x0) == 1:
        x0 = np.repeat(x0, len(betas), axis=0)
    if len(betas) > 1 and len(betas) != len(x0):
        raise ValueError(f"got {len(betas)} betas for {len(x0)} images; give one beta, or one per image")
    targets = np.full(len(x0), t, dtype=np.int64)
    # beta = 0 everywhere: the tutorial's plain loop, without a penalty term (a zero penalty would
    # still change the last bits of the sum of gradients). Any other betas share one compiled loop.
    penalty = (L2Penalty(),) if np.any(betas > 0) else ()
    data = {"labels": targets, **({"beta": np.broadcast_to(betas, len(x0))} if penalty else {})}
    loop = _cross_entropy_loop(model, True, "plain", (*penalty, *((PixelRange(),) if clip else ())), jit_compile).run(
        x0, data, steps=steps, step_size=learning_rate, progress=progress, description="noise filter",
    )
    return _result("noise_filter", x0, loop, targets, True, None, [], classes)
