"""Style-transfer adaptation (docs/method.md §6.2-6.8): image-style clustering, synthetic masks, augmentation.

* `features` / `clustering`: describe each image's style by a feature vector and group images into
  styles with correlation k-means, as `fromKaggleToClusters` did (docs/method.md §6.3).
* `maskdb` / `synth_masks`: the database of nucleus shapes and the synthetic label images built
  from it ("tetris" placement, docs/method.md §6.2 and §6.5).
* `tiles`: the 256×256 tiles of each image and mask pair (docs/method.md §6.4).
* `augment`: nucleus-size normalisation to 40 px, 512 crops and the original's random
  photometric augmentations (docs/method.md §6.8).

Everything here is numpy in, numpy out; files are handled by `nucleaizer_tf.pipelines.style_transfer`.
"""
