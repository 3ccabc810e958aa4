"""The nucleAIzer U-Net: the faithful architecture (and slim variants) and the 7-member ensemble."""

from nucleaizer_tf.system import import_tensorflow

import_tensorflow()  # the first import of TensorFlow without its start-up chatter

from nucleaizer_tf.unet.model import BN_EPSILON, BN_MOMENTUM, PadToMatch, build_unet

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "PadToMatch", "build_unet"]

# The ensemble (nucleaizer_tf.unet.ensemble) is imported from its module, not here: it depends on the
# training module, and `build_unet` alone must stay importable without it.
