"""Training the face models: the face set (:mod:`~tools.facetrain.data`), the training loop
(:mod:`~tools.facetrain.training`), model cards (:mod:`~tools.facetrain.card`) and all-or-nothing output files
(:mod:`~tools.facetrain.outputs`)."""
