"""The networks: ImageNet classifiers and the one door for class names
(:mod:`~course_utils.models.imagenet`, with the EfficientNet-Lite port in
:mod:`~course_utils.models.efficientnet_lite`), the face models of lessons 1, 4, 5 and 7
(:mod:`~course_utils.models.faces`), and running a model and looking inside it: the one cache of
compiled functions and which layers to look at (:mod:`~course_utils.models.forward`).
Depends on :mod:`course_utils.io`.

The names the lessons use are importable from here: ``from course_utils.models import load_imagenet_model``."""

from course_utils.models.imagenet import (
    imagenet_class_index, imagenet_label, input_size, load_imagenet_model, predict_top_k, score_table,
)
from course_utils.models.faces import (
    GENDER_CLASSES, ROBUST_CARD, face_card, face_facts, load_face_model, load_gender_cnn, load_robust_gender_cnn,
    load_robustness, model_card_section,
)
from course_utils.models.forward import conv_layers, feature_model, layer_summary, receptive_field

__all__ = [
    "input_size", "load_imagenet_model", "predict_top_k", "score_table", "imagenet_class_index", "imagenet_label",
    "GENDER_CLASSES", "ROBUST_CARD", "load_gender_cnn", "load_robust_gender_cnn", "load_robustness",
    "model_card_section", "face_card", "face_facts", "load_face_model", "conv_layers", "feature_model",
    "layer_summary", "receptive_field",
]
