"""pix2pix mask -> image translation in Keras 3 (docs/method.md §6.6-6.7): one model per image style.

* `generator`: the U-Net "unet_256" generator (depth configurable for small tiles).
* `discriminator`: the 70×70 PatchGAN (n_layers 3).
* `train`: BCE GAN + 100·L1 training on the shared tf.data layer, the original's schedule.
* `generate`: synthetic images from label images with the generator in training mode (docs/method.md, quirk Q13).
"""

from nucleaizer_tf.system import import_tensorflow

import_tensorflow()  # the first import of TensorFlow without its start-up chatter

from nucleaizer_tf.pix2pix.discriminator import patch_discriminator
from nucleaizer_tf.pix2pix.generate import generate_images, labels_to_input, output_to_uint8
from nucleaizer_tf.pix2pix.generator import unet_generator
from nucleaizer_tf.pix2pix.train import Pix2PixConfig, Pix2PixTrainer, TrainResult, pix2pix_dataset, schedule

__all__ = [
    "Pix2PixConfig",
    "Pix2PixTrainer",
    "TrainResult",
    "generate_images",
    "labels_to_input",
    "output_to_uint8",
    "patch_discriminator",
    "pix2pix_dataset",
    "schedule",
    "unet_generator",
]
