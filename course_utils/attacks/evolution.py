"""Fooling images by evolution: pictures nobody would recognise that a network calls a class at
p >= 0.99, found with nothing but its probabilities (Nguyen, Yosinski & Clune, CVPR 2015). The search
never asks for a gradient: it mutates genomes, shows the pictures to the model (one batched, compiled
forward pass per generation, counted as queries) and keeps the better ones.

- :class:`GridEncoding` -- a picture as a small grid of colours (a *genome* in 0..1), smoothly
  upsampled into a tile repeated across the picture: a few hundred numbers instead of 150,528 pixels,
  in the spirit of Nguyen et al.'s CPPN encoding. It can only make periodic textures, so a long
  search reaches p >= 0.99 for a few texture classes, not for most (``fooling_genomes.md``).
- :func:`evolve_fooling_images` -- MAP-Elites over every class as in the paper, or a (1 + lambda)
  evolution strategy for one target class;
- :func:`fooling_probabilities` -- the model's softmax for genomes or pictures;
- :func:`load_fooling_genomes` -- the genomes the course ships for EfficientNet-Lite0.

Pixels are 0..255 throughout; genomes are 0..1 (0 = black, 1 = full intensity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

import course_utils  # noqa: F401  (quiets TensorFlow's start-up before Keras imports it)
from course_utils.checks import (
    MAX_WORKING_BYTES, WrongTypeError, check_flag, check_int, check_memory, check_number, describe, effective_seed,
)
from course_utils.core.loop import progress_bar
from course_utils.io.images import DATA_DIR
from course_utils.io.images import as_batch
from course_utils.models.forward import compiled_forward
from course_utils.models.imagenet import ClassNames

__all__ = ["FOOLING_GENOMES", "GridEncoding", "evolve_fooling_images", "fooling_probabilities", "load_fooling_genomes"]

FOOLING_GENOMES: Path = DATA_DIR / "fooling_genomes.npz"
"""Genomes of fooling pictures for EfficientNet-Lite0, made by ``tools/evolve_fooling_images.py``
(its card, ``fooling_genomes.md``, says how)."""


def _interpolation(n: int, size: int) -> np.ndarray:
    """``(size, n)`` weights of periodic linear interpolation: ``n`` values spread over ``size``
    pixels, wrapping around, so that tiles placed side by side join without a seam."""
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    a = np.zeros((size, n), np.float64)
    a[np.arange(size), lo % n] += 1.0 - frac
    a[np.arange(size), (lo + 1) % n] += frac
    return a


@dataclass(frozen=True)
class GridEncoding:
    """A picture as a ``(grid, grid, channels)`` genome in 0..1, upsampled and tiled.

    The genome is spread smoothly (periodic linear interpolation) over a square tile of
    ``size / tiles`` pixels, and the tile is repeated ``tiles`` x ``tiles`` times.

    Args:
        grid: genome side (2..64): 8 gives 192 numbers for a colour picture.
        tiles: repetitions per side (1..16); ``size`` must be a multiple of it.
        size: picture side in pixels (224 for EfficientNet-Lite0, 48 for the face CNN).
        channels: 3 (colour) or 1 (grey).
    """

    grid: int = 8
    tiles: int = 4
    size: int = 224
    channels: int = 3

    def __post_init__(self) -> None:
        check_int("grid", self.grid, minimum=2, maximum=64)
        check_int("tiles", self.tiles, minimum=1, maximum=16)
        check_int("size", self.size, minimum=2, maximum=4096)
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {describe(self.channels)}")
        if self.size % self.tiles:
            raise ValueError(f"size {self.size} is not a multiple of tiles {self.tiles}: choose tiles that divide it")

    @property
    def shape(self) -> tuple[int, int, int]:
        """A genome's shape, ``(grid, grid, channels)``."""
        return (self.grid, self.grid, self.channels)

    def render(self, genomes: Any) -> np.ndarray:
        """Genomes ``(N, grid, grid, channels)`` (or one, without ``N``) in 0..1 -> float32
        pictures ``(N, size, size, channels)``, pixels 0..255 (NumPy: the same numbers everywhere)."""
        g = np.asarray(genomes, np.float64)
        if g.shape == self.shape:
            g = g[None]
        if g.ndim != 4 or g.shape[1:] != self.shape:
            raise ValueError(f"genomes must have shape (N, {self.grid}, {self.grid}, {self.channels}), got {g.shape}")
        a = _interpolation(self.grid, self.size // self.tiles)
        tile = np.einsum("yi,nijc,xj->nyxc", a, np.clip(g, 0.0, 1.0), a)
        return (255.0 * np.tile(tile, (1, self.tiles, self.tiles, 1))).astype(np.float32)


@dataclass
class _EvolutionResult:
    """What :func:`evolve_fooling_images` found, best first. Not an
    :class:`~course_utils.attacks.gradient.AttackResult`: the pictures are grown from nothing, there
    is no photo they change (no original, no change to measure).

    Attributes:
        genomes: float32 ``(K, grid, grid, channels)`` in 0..1, one per class kept.
        images: float32 ``(K, size, size, channels)`` pixels 0..255, ``encoding.render(genomes)``.
        classes: int ``(K,)`` the class each picture is called.
        probabilities: float ``(K,)`` the model's probability of that class (softmax).
        names: the class names.
        queries: pictures shown to the model (every evaluation counts, the first population too).
        history: one row per generation (0 = the random start): ``generation``, ``queries``,
            ``best_probability`` (the best elite's), ``classes_at_99`` (elites with p >= 0.99).
        encoding: how a genome becomes a picture.
        all_elites: MAP-Elites only: ``{class: (genome, probability)}`` for every class reached.
    """

    genomes: np.ndarray
    images: np.ndarray
    classes: np.ndarray
    probabilities: np.ndarray
    names: list[str]
    queries: int
    history: pd.DataFrame
    encoding: GridEncoding
    all_elites: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per picture: ``class``, ``name``, ``probability``."""
        return pd.DataFrame({"class": self.classes, "name": self.names, "probability": self.probabilities})

    def __repr__(self) -> str:
        best = f"{self.probabilities[0]:.4f} ({self.names[0]})" if len(self.classes) else "none"
        return f"EvolutionResult({len(self.classes)} pictures, best p = {best}, {self.queries} queries)"


def _input_shape(model: Any) -> tuple[int, int, int]:
    shape = getattr(model, "input_shape", None)
    if not shape or len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"the model must take square pictures (N, S, S, C), its input shape is {shape}")
    return int(shape[1]), int(shape[1]), int(shape[3])


def fooling_probabilities(model: Any, pictures: Any, encoding: GridEncoding | None = None) -> np.ndarray:
    """The model's softmax ``(N, classes)`` for pictures ``(N, S, S, C)`` (pixels 0..255), or for
    genomes when an ``encoding`` is given (rendered first), 32 pictures per compiled call."""
    if encoding is not None:
        x = encoding.render(_check_genomes(pictures, encoding, "genomes"))
    else:
        x = np.asarray(pictures, np.float32)
        if x.ndim == 4 and x.shape[1:] == _input_shape(model):
            x = as_batch(x, model)  # NaN/inf, pixels 0..255
    if x.ndim != 4 or x.shape[1:] != _input_shape(model):
        raise ValueError(f"the model takes pictures of shape (N, {', '.join(map(str, _input_shape(model)))}), got {x.shape}")
    fn = compiled_forward(model, "probabilities")
    return np.concatenate([fn(tf.constant(x[i:i + 32])).numpy() for i in range(0, len(x), 32)])


def _check_genomes(genomes: Any, encoding: GridEncoding, name: str) -> np.ndarray:
    """Genomes ``(M, grid, grid, C)`` (or one) of finite numbers in 0..1, float32, or a clear error."""
    g = np.asarray(genomes)
    if g.dtype.kind not in "biuf" or g.dtype.kind == "b":
        raise WrongTypeError(f"{name} must hold numbers in 0..1, got dtype {g.dtype}")
    g = g.astype(np.float32)
    if g.shape == encoding.shape:
        g = g[None]
    if g.ndim != 4 or g.shape[1:] != encoding.shape or len(g) < 1:
        raise ValueError(f"{name} must be genomes of shape (M, {', '.join(map(str, encoding.shape))}), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError(f"{name} holds NaN or infinite values; genomes are numbers in 0..1")
    if g.min() < 0.0 or g.max() > 1.0:
        hint = "; they look like pixels 0..255: divide by 255" if g.max() > 1.0 and g.max() <= 255.0 else ""
        raise ValueError(f"{name} must be genomes in 0..1 (0 = black, 1 = full intensity), got values "
                         f"{g.min():.3g}..{g.max():.3g}{hint}")
    return g


def _peak_bytes(model: Any) -> int:
    """About the most bytes one picture takes in a forward pass of ``model`` (inference keeps a few
    activations alive at a time: three of its largest layer output)."""
    largest = 0
    for layer in getattr(model, "layers", ()):
        try:
            largest = max(largest, int(np.prod([d for d in tuple(layer.output.shape)[1:] if d is not None])))
        except (AttributeError, ValueError, TypeError):
            continue
    return 3 * 4 * largest


def _mutate(parents: np.ndarray, sigma: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each gene changed with probability ``rate`` by Gaussian noise of ``sigma``, clipped to 0..1;
    at least one gene of every child changes."""
    n = len(parents)
    flat = parents.reshape(n, -1)
    which = rng.random(flat.shape) < rate
    which[np.arange(n), rng.integers(0, flat.shape[1], n)] = True
    noise = rng.normal(0.0, sigma, flat.shape)
    return np.clip(flat + which * noise, 0.0, 1.0).astype(np.float32).reshape(parents.shape)


def evolve_fooling_images(
    model: Any,
    *,
    target: Any = None,
    encoding: GridEncoding | None = None,
    population: int = 32,
    generations: int = 20,
    sigma: float = 0.15,
    rate: float = 0.1,
    keep: int = 12,
    start: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> _EvolutionResult:
    """Evolve pictures the model calls a class with high probability, from probabilities alone.

    Args:
        model: a classifier ``(N, S, S, C)`` pixels 0..255 -> ``(N, classes)`` logits.
        target: ``None``: MAP-Elites over every class (keep each class's best picture, mutate
            elites drawn at random). A class (index or name): a (1 + lambda) strategy for it.
        encoding: how a genome becomes a picture; default ``GridEncoding(8, 4, S, C)``.
        population, generations: pictures per generation (one batched forward pass) and generations
            after the random start, each >= 1: ``population * (generations + 1)`` queries, or
            ``M + population * generations`` from ``start``.
        sigma: size of a mutation (0..1 of full intensity), > 0; ``rate``: chance that a gene
            mutates, in (0, 1] (at least one always does).
        keep: MAP-Elites: how many of the best classes to return as pictures (all are in
            ``all_elites``). With a target: 1.
        start: optional genomes ``(M, grid, grid, C)`` in 0..1, the first generation instead of
            ``population`` random ones.
        seed: the same seed, the same pictures (``COURSE_SEED`` moves it); ``progress``: a text
            progress bar (one tick per generation).

    Returns an :class:`_EvolutionResult`, best first; raises ``ValueError`` for an argument out of
    its range above, an unknown class, an encoding whose pictures the model does not take.
    """
    population = check_int("population", population, minimum=1)
    generations = check_int("generations", generations, minimum=1)
    sigma = check_number("sigma", sigma, minimum=0.0, above=True)
    rate = check_number("rate", rate, minimum=0.0, maximum=1.0, above=True)
    keep = check_int("keep", keep, minimum=1)
    progress = check_flag("progress", progress)
    size, _, channels = _input_shape(model)
    num_classes = int(model.output_shape[-1])
    encoding = encoding if encoding is not None else GridEncoding(8, 4 if size % 4 == 0 else 1, size, channels)
    if not isinstance(encoding, GridEncoding):
        raise WrongTypeError(f"encoding must be a GridEncoding, got {describe(encoding)}")
    if (encoding.size, encoding.channels) != (size, channels):
        raise ValueError(f"the encoding makes {encoding.size} px pictures with {encoding.channels} channel(s); "
                         f"the model takes {size} px with {channels}: use GridEncoding(size={size}, channels={channels})")
    classes = ClassNames.of(model if getattr(model, "class_names", None) is not None else num_classes)
    cls = None if target is None else classes.index(target, name="target")
    seed = effective_seed(seed)
    if start is not None:
        start = _check_genomes(start, encoding, "start")
    per = 4 * encoding.size**2 * channels * 5 + _peak_bytes(model)  # rendered in float64 (twice), float32, the model
    largest = max(population, 0 if start is None else len(start))
    check_memory("population", largest, largest * per, f"{max(1, MAX_WORKING_BYTES // per):,}",
                 f"{largest:,} pictures of {encoding.size} x {encoding.size} x {channels} rendered and sent to the "
                 "model in one batch")
    rng = np.random.default_rng(seed)
    first = start.copy() if start is not None else rng.uniform(0.0, 1.0, (population, *encoding.shape)).astype(np.float32)
    fn = compiled_forward(model, "probabilities")

    def query(genomes: np.ndarray) -> np.ndarray:
        return fn(tf.constant(encoding.render(genomes))).numpy()

    bar = progress_bar(generations, "evolution" if cls is None else f"evolution -> {classes.label(cls)}", show=progress)
    probs = query(first)
    queries = len(first)
    rows = []
    if cls is not None:  # (1 + lambda): the parent is the best picture so far
        best = int(np.argmax(probs[:, cls]))
        parent, parent_p = first[best], float(probs[best, cls])
        rows.append((0, queries, parent_p, int(parent_p >= 0.99)))
        for gen in range(1, generations + 1):
            children = _mutate(np.repeat(parent[None], population, 0), sigma, rate, rng)
            p = query(children)[:, cls]
            queries += population
            i = int(np.argmax(p))
            if p[i] > parent_p:
                parent, parent_p = children[i], float(p[i])
            rows.append((gen, queries, parent_p, int(parent_p >= 0.99)))
            bar.update(1)
        elites = {cls: (parent, parent_p)}
    else:  # MAP-Elites: one elite per class, the best picture of that class so far
        elites: dict[int, tuple[np.ndarray, float]] = {}

        def update(genomes: np.ndarray, p: np.ndarray) -> None:
            best = np.argmax(p, axis=0)  # for each class, the best new picture
            top = p[best, np.arange(num_classes)]
            for c in np.flatnonzero(top > 0.0):
                if c not in elites or top[c] > elites[c][1]:
                    elites[int(c)] = (genomes[best[c]], float(top[c]))

        def record(gen: int) -> None:
            ps = np.array([e[1] for e in elites.values()])
            rows.append((gen, queries, float(ps.max()), int(np.sum(ps >= 0.99))))

        update(first, probs)
        record(0)
        for gen in range(1, generations + 1):
            keys = list(elites)
            parents = np.stack([elites[keys[k]][0] for k in rng.integers(0, len(keys), population)])
            children = _mutate(parents, sigma, rate, rng)
            update(children, query(children))
            queries += population
            record(gen)
            bar.update(1)
    bar.close()
    order = sorted(elites, key=lambda c: -elites[c][1])[: (1 if cls is not None else keep)]
    genomes = np.stack([elites[c][0] for c in order])
    history = pd.DataFrame(rows, columns=["generation", "queries", "best_probability", "classes_at_99"])
    return _EvolutionResult(
        genomes=genomes,
        images=encoding.render(genomes),
        classes=np.array(order, dtype=int),
        probabilities=np.array([elites[c][1] for c in order]),
        names=[classes.label(c) for c in order],
        queries=queries,
        history=history,
        encoding=encoding,
        all_elites=dict(elites) if cls is None else {},
    )


def load_fooling_genomes() -> tuple[np.ndarray, np.ndarray, GridEncoding]:
    """The shipped fooling genomes for EfficientNet-Lite0: ``(genomes, classes, encoding)``.

    ``genomes`` is float32 ``(K, grid, grid, 3)`` in 0..1, ``classes`` int ``(K,)``;
    ``encoding.render(genomes)`` gives the pictures (224 px, pixels 0..255). Lite0's probabilities are
    *not* read from the file: ask the model (:func:`fooling_probabilities`).

    Raises:
        FileNotFoundError: the file is missing (reinstall the course, or run
            ``python tools/evolve_fooling_images.py`` in a checkout).
    """
    path = FOOLING_GENOMES
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the course, or run "
                                "`python tools/evolve_fooling_images.py` in a checkout to make it")
    with np.load(path, allow_pickle=False) as data:
        genomes = data["genomes"].astype(np.float32)
        classes = data["classes"].astype(int)
        encoding = GridEncoding(*(int(v) for v in data["encoding"]))
    return genomes, classes, encoding
