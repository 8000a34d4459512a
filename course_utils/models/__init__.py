"""The networks: ImageNet classifiers (:mod:`~course_utils.models.imagenet`, the EfficientNet-Lite
port in :mod:`~course_utils.models.efficientnet_lite`), the face models of lessons 1 and 4
(:mod:`~course_utils.models.faces`), class names (:mod:`~course_utils.models.labels`) and which
layers to look at (:mod:`~course_utils.models.layers`). Depends on :mod:`course_utils.io`."""
