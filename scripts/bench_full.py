"""Benchmark: s/image of nucleAIzer's fast mode vs its full mode on CPU, measured in one run.

fast : presegmentation only (Mask R-CNN at 1024, the README's `predict --model`)
full : presegmentation + size estimation + 2x upscaling + U-Net ensemble + Mask R-CNN at the 2x and 4x
       sizes + post-processing (`predict --mode full`), from an empty work folder

Both use the same legacy weight file for every Mask R-CNN stage; the U-Net ensemble is 7 randomly
initialised members of the original architecture (31 M parameters each) unless --unet is given.
Network builds are excluded (done before timing); every image is timed once per mode.

Usage: python scripts/bench_full.py WEIGHTS.h5 IMAGES_DIR [--unet DIR] [--max-network-size N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("--unet", type=Path)
    parser.add_argument("--max-network-size", type=int)
    parser.add_argument("--limit", type=int, default=3, help="number of images")
    args = parser.parse_args()

    from nucleaizer_tf.io import list_images, read_image
    from nucleaizer_tf.maskrcnn import MaskRCNN, MaskRCNNConfig
    from nucleaizer_tf.full import FullPipeline, FullSettings
    from nucleaizer_tf.unet.ensemble import make_seeded_ensemble

    files = list_images(args.images)[: args.limit]
    images = [(p.stem, read_image(p)) for p in files]
    with tempfile.TemporaryDirectory() as tmp:
        unet = args.unet
        if unet is None:
            unet = Path(tmp) / "unet"
            make_seeded_ensemble(unet)
        fast_model = MaskRCNN.from_legacy_h5(args.weights, MaskRCNNConfig.presegment())
        fast_model.segment(images[0][1])  # warm-up (tracing)
        fast = []
        for _, image in images:
            start = time.perf_counter()
            fast_model.segment(image)
            fast.append(time.perf_counter() - start)

        settings = FullSettings(max_network_size=args.max_network_size)
        warm = FullPipeline(Path(tmp) / "warm", args.weights, args.weights, unet, settings)
        warm.segment(*images[0][::-1])  # builds and traces every network once
        pipeline = FullPipeline(Path(tmp) / "work", args.weights, args.weights, unet, settings)
        pipeline.load_networks()
        full, sizes = [], []
        for stem, image in images:
            start = time.perf_counter()
            _, facts = pipeline.segment(image, stem)
            full.append(time.perf_counter() - start)
            sizes.append((facts["network_size_2x"], facts["network_size_4x"]))

    print(f"{len(images)} images ({', '.join(f'{i.shape[0]}x{i.shape[1]}' for _, i in images)}), {os.cpu_count()} CPU cores")
    print(f"  fast mode  {statistics.mean(fast):6.2f} s/image  (per image: {', '.join(f'{t:.2f}' for t in fast)})")
    print(f"  full mode  {statistics.mean(full):6.2f} s/image  (per image: {', '.join(f'{t:.2f}' for t in full)})")
    print(f"  full / fast {statistics.mean(full) / statistics.mean(fast):.1f}x; 2x/4x network sizes: {sizes}")


if __name__ == "__main__":
    main()
