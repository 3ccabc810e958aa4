"""Image and label files in, arrays out (and back): the only place that knows file formats."""

from nucleaizer_tf.io.convert import CONVERSION_MODES, to_rgb8
from nucleaizer_tf.io.export import (
    geojson_collection,
    read_geojson,
    read_roi_zip,
    write_geojson,
    write_roi_zip,
    write_rows_csv,
    write_table_csv,
)
from nucleaizer_tf.io.read import (
    IMAGE_EXTENSIONS,
    LABEL_EXTENSIONS,
    LABEL_SOURCE_EXTENSIONS,
    VECTOR_LABEL_EXTENSIONS,
    list_images,
    read_image,
    read_json,
    read_labels,
    read_planes,
)
from nucleaizer_tf.io.write import (
    atomic_path,
    check_output_file,
    check_writable_folder,
    remove_stale_temporaries,
    safe_stem,
    write_image,
    write_json,
    write_labels,
    write_rgb,
)

__all__ = [
    "CONVERSION_MODES",
    "IMAGE_EXTENSIONS",
    "LABEL_EXTENSIONS",
    "LABEL_SOURCE_EXTENSIONS",
    "VECTOR_LABEL_EXTENSIONS",
    "atomic_path",
    "check_output_file",
    "check_writable_folder",
    "geojson_collection",
    "read_geojson",
    "read_roi_zip",
    "list_images",
    "read_image",
    "read_json",
    "read_labels",
    "read_planes",
    "remove_stale_temporaries",
    "safe_stem",
    "to_rgb8",
    "write_geojson",
    "write_image",
    "write_json",
    "write_labels",
    "write_rgb",
    "write_roi_zip",
    "write_rows_csv",
    "write_table_csv",
]
