"""The original PyTorch U-Net import's former home: it is `nucleaizer_tf.unet.torch_import` (part of the U-Net
model kind, so the full pipeline can use it); the names stay importable from here."""

from nucleaizer_tf.unet.torch_import import (
    convert_unet_folder,
    ensemble_folder_for,
    original_members,
)

__all__ = ["convert_unet_folder", "ensemble_folder_for", "original_members"]
