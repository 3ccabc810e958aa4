"""A peer on the same data: StarDist 2D trained on our training split for a fixed wall-clock time.

Benchmark only: StarDist is never a dependency of nucleaizer-tf. Its TensorFlow/Keras needs differ from
ours (it runs on Keras 2), so it lives in a virtual environment of its own:

    python3 -m venv /tmp/sdvenv && /tmp/sdvenv/bin/pip install "tensorflow-cpu==2.15.*" stardist
    /tmp/sdvenv/bin/python scripts/bench_stardist_peer.py ../shared/data/dsb2018 --out /tmp/stardist --minutes 100
    .venv/bin/python scripts/validate_default_model.py ../shared/data/dsb2018 --predictions stardist=/tmp/stardist/labels

This script imports nothing from nucleaizer-tf. It trains `StarDist2D` from random weights on the images
that are not in validation.txt, as StarDist's own 2-D training example does for DSB 2018 (per-image
1–99.8 % percentile normalisation, filled label holes, 32 rays, grid 2, 256² patches, flips, 90°
rotations and an intensity jitter), with every image given as 3-channel RGB (grey images repeated) so
fluorescence and stained images share one model; training stops after --minutes of wall-clock time
(the end of the running epoch). The best weights by StarDist's validation loss are kept, its
probability and NMS thresholds are optimised on the validation images (StarDist's own
`optimize_thresholds`; our model's instance thresholds were chosen on the same split), and every
validation image is segmented and written as OUT/labels/<id>.tiff for scoring with our metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder with images/, masks/ and validation.txt")
    parser.add_argument("--out", type=Path, required=True, help="output folder (model + labels/)")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    from csbdeep.utils import normalize
    from PIL import Image
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D
    from tifffile import imread, imwrite

    def read_rgb(path):
        image = np.asarray(Image.open(path))
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
        return normalize(image.astype(np.float32), 1, 99.8, axis=(0, 1))

    val_ids = set((args.data / "validation.txt").read_text().split())
    ids = sorted(p.stem for p in (args.data / "images").glob("*.png"))
    train_ids = [i for i in ids if i not in val_ids]
    val_ids = sorted(val_ids)

    def load(which):
        return ([read_rgb(args.data / "images" / f"{i}.png") for i in which],
                [fill_label_holes(imread(args.data / "masks" / f"{i}.tiff")) for i in which])

    x_train, y_train = load(train_ids)
    x_val, y_val = load(val_ids)
    print(f"{len(x_train)} training and {len(x_val)} validation images", flush=True)

    def augment(x, y):
        k = np.random.randint(4)
        x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k)
        if np.random.rand() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        x = x * np.random.uniform(0.6, 2.0) + np.random.uniform(-0.2, 0.2)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    class TimeLimit(tf.keras.callbacks.Callback):
        def __init__(self, seconds):
            super().__init__()
            self.deadline = time.perf_counter() + seconds

        def on_epoch_end(self, epoch, logs=None):
            if time.perf_counter() > self.deadline:
                self.model.stop_training = True

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=3, train_patch_size=(256, 256),
                      train_steps_per_epoch=args.steps, train_epochs=100000)
    model = StarDist2D(config, name="stardist", basedir=str(args.out))
    start = time.perf_counter()
    model.prepare_for_training()
    model.callbacks.append(TimeLimit(args.minutes * 60))
    history = model.train(x_train, y_train, validation_data=(x_val, y_val), augmenter=augment, seed=args.seed)
    train_seconds = time.perf_counter() - start
    model.load_weights("weights_best.h5")
    thresholds = model.optimize_thresholds(x_val, y_val)
    (args.out / "labels").mkdir(parents=True, exist_ok=True)
    predict_start = time.perf_counter()
    for name, image in zip(val_ids, x_val):
        labels, _ = model.predict_instances(image, n_tiles=model._guess_n_tiles(image))
        imwrite(args.out / "labels" / f"{name}.tiff", labels.astype(np.uint16), compression="zlib")
    record = {"train_seconds": train_seconds, "epochs": len(history.history["loss"]), "steps_per_epoch": args.steps,
              "thresholds": thresholds, "predict_seconds_per_image": (time.perf_counter() - predict_start) / len(x_val),
              "train_images": len(x_train), "validation_images": len(x_val)}
    (args.out / "run.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
