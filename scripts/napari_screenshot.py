"""A screenshot of the napari plugin: the Segment widget docked, a bundled example segmented.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/napari_screenshot.py docs/images/napari_segment.jpg

Opens a viewer (a real window, so run it on a desktop or under Xvfb), loads the plugin's sample
"fluo_dense", docks the Segment and Export widgets, segments the image with the shipped model through
the widget (as a user clicking "Segment" would) and saves the whole window. Prints the nucleus count
and the time the widget reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--sample", default="fluo_dense", help="fluo_dense, fluo_sparse or brightfield")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from nucleaizer_tf.io import write_rgb
    from nucleaizer_tf.napari.engine import ENGINE
    from nucleaizer_tf.napari.export_widget import ExportWidget
    from nucleaizer_tf.napari.segment_widget import SegmentWidget

    viewer = napari.Viewer(title="nucleaizer-tf")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open_sample("nucleaizer-tf", args.sample)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment", area="right")
    viewer.window.add_dock_widget(ExportWidget(viewer), name="Export", area="right")
    app = QApplication.instance()
    segment.run()
    started = time.perf_counter()
    while not segment.panel.run_button.enabled and time.perf_counter() - started < 600:
        app.processEvents()
        time.sleep(0.05)
    name = f"{args.sample} nuclei"
    if name not in viewer.layers:
        print(f"error: the Segment widget did not finish: {segment.panel.status.value}", file=sys.stderr)
        return 1
    viewer.layers[name].contour = 1
    viewer.layers.selection.active = viewer.layers[name]
    viewer.window._qt_window.raise_()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    write_rgb(args.out, shot[..., :3])
    print(f"{args.out}: {shot.shape[1]}x{shot.shape[0]} px; Segment: {segment.panel.status.value}")
    ENGINE.close()
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
