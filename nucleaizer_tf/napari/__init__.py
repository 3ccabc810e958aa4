"""The napari plugin: Segment, Adapt and Export widgets and the bundled examples as sample data.

Install with ``pip install "nucleaizer-tf[napari]"``; napari finds the plugin through the manifest
`napari.yaml` (declared as the ``napari.manifest`` entry point). The widgets are thin: they read
layers, call the library (`nucleaizer_tf.load_model`, `nucleaizer_tf.pipelines.adapt.adapt_arrays`,
`nucleaizer_tf.pipelines.measure.export_labels`) in a worker thread, and add layers or show one-line
notifications. Importing this package imports neither napari nor TensorFlow.
"""
