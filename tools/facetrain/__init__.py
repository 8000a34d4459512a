"""Training the face models: the face set (:mod:`~tools.facetrain.data`), the training loop
(:mod:`~tools.facetrain.training`), the five variants of ``tools/train_face_model.py``
(:mod:`~tools.facetrain.variants`), model cards from the templates in ``tools/cards/``
(:mod:`~tools.facetrain.card`) and all-or-nothing output files (:mod:`~tools.facetrain.outputs`)."""
