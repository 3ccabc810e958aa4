"""Pure array functions after the networks: size estimation, MATLAB-compatible resizing, refinement.

Most of what the modules below make public is importable from `nucleaizer_tf.postprocess` directly;
`size.label_id_problem`, `search.prepare_sample` and a few constants (`merge.LABEL_OFFSET`,
`params.SCALE_UNET`, `resize.CUBIC_SUPPORT`, `search.ORIGINAL_TIME_LIMIT_S` / `DEFAULT_TIME_LIMIT_S`,
`size.TENSOR_STEP` / `UNET_CSV` / `MAX_ID_GAP`) are imported from their modules:

* `size`: nucleus-size estimation and the scale tables (docs/method.md §3);
* `resize`: MATLAB-compatible `imresize` (bicubic, nearest at 0.5) and rounding;
* `params`: the nine post-processing parameters (`PostprocessParams`) and their JSON files (docs/method.md §5.3);
* `cleanup`, `merge`, `refine`: steps A, B and C of the post-processing (docs/method.md §5.4-5.6);
* `chain`: `postprocess`, the three steps for one image (docs/method.md §5.7);
* `search`: the parameter search on a validation set (docs/method.md §5.8).
"""

from nucleaizer_tf.postprocess.resize import (
    cast_like_matlab,
    cubic_contributions,
    keys_cubic,
    matlab_bicubic_upscale2,
    matlab_nearest_half,
    matlab_resize_bicubic,
    matlab_round,
)
from nucleaizer_tf.postprocess.size import (
    EXPECTED_CELL_SIZE,
    FACTORS,
    MAX_TENSOR,
    ScaleTable,
    SizeRecord,
    measure,
    median_equivalent_diameter,
    network_sizes,
    object_areas,
    rcnn_csv_name,
    read_scale_csv,
    write_scale_csvs,
)

__all__ = [
    "EXPECTED_CELL_SIZE",
    "FACTORS",
    "MAX_TENSOR",
    "ScaleTable",
    "SizeRecord",
    "cast_like_matlab",
    "cubic_contributions",
    "keys_cubic",
    "matlab_bicubic_upscale2",
    "matlab_nearest_half",
    "matlab_resize_bicubic",
    "matlab_round",
    "measure",
    "median_equivalent_diameter",
    "network_sizes",
    "object_areas",
    "rcnn_csv_name",
    "read_scale_csv",
    "write_scale_csvs",
]

# --- post-processing chain and parameter search (params, cleanup, merge, refine, chain, search) ---------
from nucleaizer_tf.postprocess.params import (
    DEFAULT,
    DEFAULT_PARAMS,
    LOWER,
    PARAM_NAMES,
    UPPER,
    X0,
    PostprocessParams,
    as_params,
    read_params,
    write_params,
)
from nucleaizer_tf.postprocess.cleanup import (
    absorb_holes,
    cleanup_scale,
    convex_deficiency,
    first_component,
    merge_touching,
    neighbour_pairs,
    relabel,
    relabel_consecutive,
    remove_small,
)
from nucleaizer_tf.postprocess.merge import greedy_merge, merge_for_search, select_or_merge
from nucleaizer_tf.postprocess.refine import (
    dilate_labels,
    erode_labels,
    first_component_filter,
    probability_mask,
    refine_with_unet,
    ring_correction,
    support_filter,
)
from nucleaizer_tf.postprocess.chain import postprocess
from nucleaizer_tf.postprocess.search import (
    PreparedSample,
    SearchResult,
    ValidationSample,
    evaluate_params,
    load_validation_folders,
    prepare_validation,
    search_parameters,
    write_search_result,
)

__all__ += [
    "DEFAULT",
    "DEFAULT_PARAMS",
    "LOWER",
    "PARAM_NAMES",
    "UPPER",
    "X0",
    "PostprocessParams",
    "as_params",
    "read_params",
    "write_params",
    "absorb_holes",
    "cleanup_scale",
    "convex_deficiency",
    "first_component",
    "merge_touching",
    "neighbour_pairs",
    "relabel",
    "relabel_consecutive",
    "remove_small",
    "greedy_merge",
    "merge_for_search",
    "select_or_merge",
    "dilate_labels",
    "erode_labels",
    "first_component_filter",
    "probability_mask",
    "refine_with_unet",
    "ring_correction",
    "support_filter",
    "postprocess",
    "PreparedSample",
    "SearchResult",
    "ValidationSample",
    "evaluate_params",
    "load_validation_folders",
    "prepare_validation",
    "search_parameters",
    "write_search_result",
]
