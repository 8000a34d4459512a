"""Getting things in: photos (:mod:`~course_utils.io.images`, pixels 0..255 out), the sample photos
and faces (:mod:`~course_utils.io.samples`), the one download routine (:mod:`~course_utils.io.fetch`)
and a safe reader of legacy PyTorch weight files (:mod:`~course_utils.io.pth`). Depends on nothing
else in the course but its checks.

The names the lessons use are importable from here: ``from course_utils.io import load_image``."""

from course_utils.io.images import load_image, to_uint8
from course_utils.io.samples import FACE_BOXES, SAMPLE_IMAGES, sample_face, sample_image

__all__ = ["load_image", "to_uint8", "FACE_BOXES", "SAMPLE_IMAGES", "sample_face", "sample_image"]
