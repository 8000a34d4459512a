"""Getting things in: photos, the sample photos and faces, the one downloader and the shipped data
(:mod:`~course_utils.io.images`, pixels 0..255 out), and a safe reader of legacy PyTorch weight
files (:mod:`~course_utils.io.pth`). Depends on nothing else in the course but its checks.

The names the lessons use are importable from here: ``from course_utils.io import load_image``."""

from course_utils.io.images import FACE_BOXES, SAMPLE_IMAGES, load_image, sample_face, sample_image, to_uint8

__all__ = ["load_image", "to_uint8", "FACE_BOXES", "SAMPLE_IMAGES", "sample_face", "sample_image"]
