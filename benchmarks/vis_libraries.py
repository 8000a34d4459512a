"""``python -m benchmarks.vis_libraries [--quick] [--methods ...] [--xplique-steps N] [--out DIR]``:
lesson 3's class pictures next to Xplique's.

The five classes of :data:`course_utils.vis.JUDGED_CLASSES` (sea snake, goldfish, flamingo, teapot,
pizza) drawn from noise on EfficientNet-Lite0 four ways, all five classes in one call per method:

- ``plain``: :func:`course_utils.vis.maximize_class` on the pixels, 40 steps of 2 grey levels;
- ``lucid``: the same with ``style="lucid"`` (Olah et al., 2017), 128 steps;
- ``maco``: :func:`course_utils.vis.maximize_class_maco` (Fel et al., NeurIPS 2023), 128 steps at 320x320;
- ``xplique``: Xplique 2.0.2's ``optimize`` at its defaults (Fourier preconditioning with decay
  0.85, its "standard" transforms, a sigmoid to valid pixels, Adam at 0.05, 512x512, 256 steps)
  on a class-logit objective, the model wrapped so that Xplique's pixels 0..1 reach it as 0..255.

The course's three settings are those of its shipped pictures (``tools/make_class_pictures.py``,
``data/class_pictures.md``); ``shipped-plain``, ``shipped-lucid`` and ``shipped-maco`` measure those
pictures themselves, as lesson 3 shows them, with the seconds their card recorded (another run,
another load) instead of making them again. Every picture is measured as the lesson measures the
shipped ones, as shown (``uint8``), with :func:`course_utils.vis.picture_stats`: the share of colour values at 0 or
255, the slope of the amplitude spectrum (next to the four sample photos', at 224x224 as in
lesson 3), the class's probability on Lite0 and its rank under EfficientNet-Lite2 (1 = Lite2's top
class); and the seconds per picture (one call's wall time, tracing included, over five), with the
1-minute load average before and after each method.

Xplique is a benchmark dependency only, in a separate environment (it pins TensorFlow <= 2.20 and
asks for the CUDA build on Linux); ``course_utils`` never imports it. Without it the run stops
before anything is computed, saying how to install it. Results are written after every method
(``vis_libraries.json``, ``.md`` and a ``.png`` grid of the pictures), so a long run that is
stopped keeps what it finished. ``--quick`` runs tiny settings: it proves the benchmark runs, its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
METHODS = ("plain", "lucid", "maco", "xplique")
SHIPPED = ("shipped-plain", "shipped-lucid", "shipped-maco")  # the course's pictures as lesson 3 shows them
XPLIQUE_VERSION = "2.0.2"
THUMB = 128  # pixels per picture in the PNG grid
PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper")  # lesson 3's sample photos for the spectrum slope
INSTALL = (f"python3 -m venv VENV && VENV/bin/pip install 'tensorflow==2.20.0' "
           f"'tensorflow-probability[tf]<=0.25.0' 'scipy<=1.15.3' 'scikit-image<=0.25.2' 'scikit-learn<=1.7.2' "
           f"deprecated einops opencv-python-headless ruff && VENV/bin/pip install --no-deps "
           f"xplique=={XPLIQUE_VERSION} && VENV/bin/pip install -e . 'tensorflow==2.20.0'")


def xplique_version() -> str:
    """Xplique's version, or ``SystemExit`` saying how to install it (before any TensorFlow work)."""
    try:
        import xplique
    except ImportError:
        raise SystemExit(
            "benchmarks.vis_libraries compares lesson 3's pictures with Xplique's, but xplique is not installed "
            f"in this environment. Install Xplique {XPLIQUE_VERSION} in a separate virtual environment (never in "
            f"the course's: it pins TensorFlow <= 2.20), e.g. from the repository root:\n  {INSTALL}\n"
            "(VENV: a folder of your choice), then run: VENV/bin/python -m benchmarks.vis_libraries") from None
    return str(getattr(xplique, "__version__", "unknown"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked (methods, steps, the output folder) before anything runs."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vis_libraries", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (proves the benchmark runs)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, run in this order (default {','.join(METHODS)}; "
                             f"also {','.join(SHIPPED)})")
    parser.add_argument("--xplique-steps", type=int, default=256, help="Xplique's nb_steps (default: its own, 256)")
    parser.add_argument("--seed", type=int, default=0, help="the course's seed; Xplique's via tf.random.set_seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for vis_libraries.json/.md/.png")
    args = parser.parse_args(argv)
    args.methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in args.methods if m not in METHODS + SHIPPED]
    if unknown or not args.methods:
        parser.error(f"unknown method(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(METHODS + SHIPPED)}")
    if args.xplique_steps < 1:
        parser.error(f"--xplique-steps must be >= 1, got {args.xplique_steps}")
    from tools.facetrain.outputs import OutputPathError, check_writable

    try:
        check_writable(args.out, "--out", folder=True)
    except OutputPathError as err:
        parser.error(str(err))
    return args


def settings(quick: bool, xplique_steps: int) -> dict[str, str]:
    """What each method runs, in words (the report's column)."""
    if quick:
        return {m: "quick: 2 steps, small pictures" for m in METHODS + SHIPPED}
    changed = "" if xplique_steps == 256 else f" (steps changed: {xplique_steps} instead of its default 256)"
    shipped = "shipped picture (data/class_pictures.npz); seconds from its card's run, not this one"
    return {**{m: shipped for m in SHIPPED}, "plain": "maximize_class, pixels, 40 steps of 2 grey levels, 224x224",
            "lucid": "maximize_class(style='lucid'), 128 steps, 224x224",
            "maco": "maximize_class_maco, 128 steps, 320x320, 6 crops of 0.5-1.0",
            "xplique": f"optimize at its defaults: Fourier (decay 0.85), standard transforms, sigmoid, Adam 0.05, "
                       f"512x512, {xplique_steps} steps{changed}"}


def xplique_pictures(model: Any, idx: list[int], steps: int, size: int, seed: int) -> Any:
    """Xplique's ``optimize`` on the logits of classes ``idx`` (one picture each, in one batch):
    ``uint8`` ``(N, size, size, 3)``. The model takes 0..255; Xplique gives 0..1, so a wrapper
    scales by 255 first (an identity layer names the logits for Xplique's objective)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from xplique.features_visualizations import Objective, optimize

    inputs = keras.Input(model.input_shape[1:])
    logits = keras.layers.Identity(name="logits")(model(keras.layers.Rescaling(255.0)(inputs)))
    wrapped = keras.Model(inputs, logits)
    tf.random.set_seed(seed)
    objective = Objective.neuron(wrapped, "logits", list(idx))
    images, _ = optimize(objective, nb_steps=steps, custom_shape=(size, size))
    return np.round(np.clip(images[-1].numpy() * 255.0, 0, 255)).astype(np.uint8)


def makers(model: Any, classes: list[str], idx: list[int], args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    """Method name -> a call giving its five ``uint8`` pictures ``(5, S, S, 3)`` (as the lesson shows them)."""
    from course_utils.vis import maximize_class, maximize_class_maco, shipped_class_pictures

    q = args.quick
    return {
        **{m: (lambda m=m: shipped_class_pictures()[m.split("-")[1]]) for m in SHIPPED},
        "plain": lambda: maximize_class(model, classes, steps=2 if q else 40, step_size=2.0, seed=args.seed,
                                        progress=False).images,
        "lucid": lambda: maximize_class(model, classes, steps=2 if q else 128, style="lucid", seed=args.seed,
                                        progress=False).images,
        "maco": lambda: maximize_class_maco(model, classes, steps=2 if q else 128, size=64 if q else 320,
                                            seed=args.seed, progress=False).images,
        "xplique": lambda: xplique_pictures(model, idx, 2 if q else args.xplique_steps, 128 if q else 512, args.seed),
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a preamble, a summary per method and a row per picture."""
    photos = report["photos"]
    lines = [
        f"# Lesson 3's class pictures next to Xplique's ({report['mode']})", "",
        f"{report['started_utc']}; {report['device']}; TensorFlow {report['tensorflow']}, Keras {report['keras']}, "
        f"Xplique {report['xplique']}; course at {report['commit']}; {report['wall_s']:.0f} s in all"
        + ("" if report["complete"] else " (**partial**: methods still to run were not reached)") + ".", "",
        "Five classes from noise on EfficientNet-Lite0, all five in one call per method. Measures as lesson 3's "
        "(`course_utils.vis.picture_stats` on the pictures as shown, `uint8`): clipped = share of colour values "
        "at 0 or 255; slope = of the amplitude spectrum on log-log axes; p = the class's probability on Lite0; "
        "Lite2 rank = the class's rank under EfficientNet-Lite2 (1 = its top class); s per picture = one call's "
        "wall time (tracing included) / 5. Load = 1-minute load average before / after the method "
        f"({report['cores']} cores: above that, other processes shared the CPU and seconds are inflated).", "",
        f"The sample photos ({', '.join(PHOTOS)}, 224x224): "
        f"clipped {photos['clipped_min']:.4f}..{photos['clipped_max']:.4f}, "
        f"slope {photos['slope_min']:.2f}..{photos['slope_max']:.2f}.", "",
    ]
    if report["mode"] == "quick":
        lines += ["Quick mode: tiny settings; the numbers only prove that the benchmark runs.", ""]
    lines += ["| method | settings | median clipped | median slope | Lite2 ranks | s per picture | load |",
              "|---|---|---|---|---|---|---|"]
    for m in report["methods"]:
        rows = m["pictures"]
        load = " / ".join("-" if v is None else str(v) for v in (m["load_before"], m["load_after"]))
        clipped = sorted(r["clipped"] for r in rows)[len(rows) // 2]
        slope = sorted(r["slope"] for r in rows)[len(rows) // 2]
        lines.append(f"| {m['method']} | {m['settings']} | {clipped:.4f} | {slope:.2f} | "
                     f"{', '.join(str(r['lite2_rank']) for r in rows)} | {m['seconds_per_picture']:.1f} | "
                     f"{load} |")
    lines += ["", "| method | class | p (Lite0) | Lite2 rank | clipped | slope |", "|---|---|---|---|---|---|"]
    for m in report["methods"]:
        for r in m["pictures"]:
            lines.append(f"| {m['method']} | {r['class']} | {r['p_model']:.4f} | {r['lite2_rank']} | "
                         f"{r['clipped']:.4f} | {r['slope']:.2f} |")
    lines += ["", f"The pictures: [{report['png']}]({report['png']}) (one row per method, each shrunk to "
              f"{THUMB}x{THUMB}).", ""]
    return "\n".join(lines)


def grid_png(path: Path, pictures: dict[str, Any], classes: list[str]) -> None:
    """A grid of the pictures (a row per method, a column per class), each resized to ``THUMB``
    pixels, written as a palette PNG (256 colours) to stay small."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = len(pictures)
    fig, axes = plt.subplots(rows, len(classes), figsize=(1.4 * len(classes), 1.45 * rows), dpi=100, squeeze=False)
    for r, (method, pics) in enumerate(pictures.items()):
        for c, name in enumerate(classes):
            ax = axes[r, c]
            ax.imshow(Image.fromarray(pics[c]).resize((THUMB, THUMB), Image.LANCZOS))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0:
                ax.set_ylabel(method, fontsize=9)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    Image.open(buf).convert("RGB").quantize(256).save(path, optimize=True)


def write(report: dict[str, Any], pictures: dict[str, Any], classes: list[str], out: Path) -> str:
    """Write ``vis_libraries.json``, ``.md`` and ``.png`` under ``out``, all or none; return the Markdown."""
    from tools.facetrain.outputs import write_files_together

    shown = SHIPPED + METHODS  # the order of the report's rows, whatever ran first
    report = dict(report, methods=sorted(report["methods"], key=lambda m: shown.index(m["method"])))
    in_grid = {m["method"]: pictures[m["method"]] for m in report["methods"]  # a shipped picture hides its live twin
               if f"shipped-{m['method']}" not in pictures}
    text = markdown(report)
    write_files_together({
        out / "vis_libraries.json": lambda p: p.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8"),
        out / "vis_libraries.md": lambda p: p.write_text(text, encoding="utf-8"),
        out / "vis_libraries.png": lambda p: grid_png(p, in_grid, classes),
    })
    return text


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the methods asked for in order, writing the results after each; print the Markdown."""
    args = parse_args(argv)
    version = xplique_version()
    import keras
    import numpy as np
    import tensorflow as tf

    import course_utils  # noqa: F401  (quiets TensorFlow's start-up)
    from benchmarks.measure import describe_device, load_average
    from course_utils.io import load_image, sample_image
    from course_utils.models import imagenet_class_index, load_imagenet_model
    from course_utils.vis import JUDGED_CLASSES, picture_stats, shipped_class_pictures

    device, details = describe_device()
    model = load_imagenet_model("efficientnet_lite0", verbose=False)
    judge = load_imagenet_model("efficientnet_lite2", verbose=False)
    classes = list(JUDGED_CLASSES)
    idx = [imagenet_class_index(name) for name in classes]
    photo = picture_stats(np.stack([load_image(sample_image(n), size=224) for n in PHOTOS]))
    words = settings(args.quick, args.xplique_steps)
    report: dict[str, Any] = {
        "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": device,
        "cores": details["cores"], "tensorflow": tf.__version__, "keras": keras.__version__, "xplique": version,
        "commit": _commit(), "mode": "quick" if args.quick else "full", "wall_s": 0.0, "complete": False,
        "classes": classes, "png": "vis_libraries.png",
        "photos": {"clipped_min": float(photo.clipped.min()), "clipped_max": float(photo.clipped.max()),
                   "slope_min": float(photo.slope.min()), "slope_max": float(photo.slope.max())},
        "methods": [],
    }
    make = makers(model, classes, idx, args)
    shipped_seconds = shipped_class_pictures()["seconds"]  # plain, lucid, maco
    pictures: dict[str, Any] = {}
    t_all = time.perf_counter()
    for method in args.methods:
        print(f"[vis_libraries] {method}: {words[method]}", file=sys.stderr, flush=True)
        load_before = load_average()
        t0 = time.perf_counter()
        pics = np.asarray(make[method]())
        wall = time.perf_counter() - t0
        if method in SHIPPED:  # made earlier by tools/make_class_pictures.py, which stored its seconds per picture
            wall = float(shipped_seconds[SHIPPED.index(method)]) * len(classes)
            load_before = None
        pictures[method] = pics
        stats = picture_stats(pics, model, judge, classes)
        report["methods"].append({
            "method": method, "settings": words[method], "size": int(pics.shape[1]), "wall_s": wall,
            "seconds_per_picture": wall / len(classes), "load_before": load_before,
            "load_after": None if method in SHIPPED else load_average(),
            "pictures": [{"class": name, "clipped": float(row.clipped), "slope": float(row.slope),
                          "p_model": float(row.p_model), "lite2_rank": int(row.judge_rank)}
                         for name, row in stats.iterrows()],
        })
        report["wall_s"] = time.perf_counter() - t_all
        report["complete"] = method == args.methods[-1]
        text = write(report, pictures, classes, args.out)
        print(f"[vis_libraries] {method}: {wall / len(classes):.1f} s per picture; wrote {args.out}", file=sys.stderr,
              flush=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
