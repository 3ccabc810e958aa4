"""Integer search of the 9 post-processing parameters on a validation set (docs/method.md §5.8).

The original ran MATLAB's ``ga`` (integer GA, population 100, 300 generations, start point X0, bounds
LOWER/UPPER) on ``1 - mean DSB score``.  Here SciPy's ``differential_evolution`` with ``integrality`` and
``x0`` plays that role (the spec allows other optimiser internals), under a wall-clock limit (docs/method.md, quirk Q6:
default 1800 s as documented; the original code used 30 s).

Preparation runs ONCE per image: hole absorption and convexity merging of both scales at 2x resolution,
their nearest 0.5 downscale and the 2x-resolution object areas (so ``remove_small`` becomes a label
lookup on the downscaled image: a pixelwise map commutes with subsampling).  One evaluation then costs a
lookup, the merge and the U-Net refinement (8-connected component filter, as ``correctWithUnet2``) and
the score of each image.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.optimize import differential_evolution

from ..errors import NucleaizerError
from ..labels import in_label_dtype
from ..metrics import score_image
from .cleanup import _labels, absorb_holes, merge_touching
from .merge import merge_for_search
from .params import DEFAULT, LOWER, PARAM_NAMES, UPPER, X0, PostprocessParams, as_params
from .refine import _resize_to, refine_with_unet
from .resize import matlab_nearest_half

__all__ = [
    "ORIGINAL_TIME_LIMIT_S",
    "DEFAULT_TIME_LIMIT_S",
    "ValidationSample",
    "PreparedSample",
    "SearchResult",
    "load_validation_folders",
    "prepare_sample",
    "prepare_validation",
    "evaluate_params",
    "search_parameters",
    "write_search_result",
]

#: What the original code passed to ``ga`` (quirk Q6) and what its documentation promised.
ORIGINAL_TIME_LIMIT_S = 30.0
DEFAULT_TIME_LIMIT_S = 1800.0

RESULT_FORMAT = "nucleaizer-tf postprocess parameter search v1"


@dataclass(frozen=True)
class ValidationSample:
    """One validation image: GT labels (H x W), the raw 2x/4x Mask R-CNN labels (2H x 2W) or None, and the
    16-bit U-Net ensemble map or None (no prediction: the image scores 0).

    Attributes
    ----------
    name : str
        Image name (the file stem), used in messages.
    gt : np.ndarray
        (H, W) ground-truth label image, 0 = background.
    l2x_raw, l4x_raw : np.ndarray or None, default None
        (2H, 2W) raw Mask R-CNN label images of the 2x and 4x runs; None when a run gave no result (an
        all-zero image is used, quirk Q14 fixed).
    ensemble16 : np.ndarray or None, default None
        2-D 16-bit U-Net ensemble map (resized to (H, W) with MATLAB bicubic by `prepare_sample` if its
        size differs); None: the image scores 0.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> sample = ValidationSample("a", gt, l2x, None, e)
    >>> sample.l4x_raw is None
    True
    """

    name: str
    gt: np.ndarray
    l2x_raw: Optional[np.ndarray] = None
    l4x_raw: Optional[np.ndarray] = None
    ensemble16: Optional[np.ndarray] = None


@dataclass(frozen=True)
class PreparedSample:
    """A validation image after the once-only steps; see prepare_sample.

    Attributes
    ----------
    name : str
        Image name.
    gt : np.ndarray
        (H, W) ground-truth label image.
    half2, half4 : np.ndarray
        (H, W) 2x / 4x labels after hole absorption and convexity merging, downscaled with
        `matlab_nearest_half` (ids as at 2x resolution; small objects not yet removed).
    area2, area4 : np.ndarray
        int64 area at 2x resolution of each id 0..max of `half2` / `half4` (index 0: background).
    ensemble16 : np.ndarray or None
        (H, W) ensemble map, already at the labels' size; None: the image scores 0.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> prepared = prepare_sample(ValidationSample("a", gt, l2x, None, e))
    >>> prepared.half2.shape, prepared.area2.tolist()
    ((16, 16), [768, 256])
    >>> int(prepared.at_min_size(44)[0].max()), int(prepared.at_min_size(300)[0].max())
    (1, 0)
    """

    name: str
    gt: np.ndarray
    half2: np.ndarray  # cleaned 2x labels downscaled (ids as at 2x resolution)
    area2: np.ndarray  # area at 2x resolution of each id 0..max
    half4: np.ndarray
    area4: np.ndarray
    ensemble16: Optional[np.ndarray]  # already at the labels' size; None -> score 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def at_min_size(self, min_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``nearest_half(remove_small(L, min_size))`` for both scales, via a label lookup."""
        key = ("small", int(min_size))
        hit = self._cache.get(key)
        if hit is None:
            hit = tuple(_drop_small(h, a, min_size) for h, a in ((self.half2, self.area2), (self.half4, self.area4)))
            self._cache[key] = hit
        return hit


def _drop_small(half: np.ndarray, area: np.ndarray, min_size: int) -> np.ndarray:
    lut = np.arange(area.size, dtype=np.int64)
    lut[area <= min_size] = 0
    return in_label_dtype(lut[half.astype(np.intp, copy=False)])


def _prepare_scale(raw, shape_2x: tuple) -> tuple[np.ndarray, np.ndarray]:
    if raw is None:  # quirk Q14 fixed: zeros of the right (2x) size instead of ones of the wrong size
        raw = np.zeros(shape_2x, dtype=np.uint16)
    lab = merge_touching(absorb_holes(raw), 8)
    area = np.bincount(lab.ravel().astype(np.intp, copy=False)) if lab.size else np.zeros(1, np.int64)
    return in_label_dtype(np.asarray(matlab_nearest_half(lab))), area


def prepare_sample(sample: ValidationSample) -> PreparedSample:
    """Once-only preparation of one validation image (docs/method.md §5.8 "Preparation", quirk Q14 fixed).

    Both scales get hole absorption and convexity merging (8-connected) at 2x resolution, their nearest
    0.5 downscale and their 2x-resolution object areas; a missing scale is an all-zero 2H x 2W image.
    The ensemble map is resized to the GT size with MATLAB bicubic if needed.

    Parameters
    ----------
    sample : ValidationSample
        The validation image.

    Returns
    -------
    PreparedSample
        The prepared image.

    Raises
    ------
    NucleaizerError
        If a downscaled label image does not match the GT size, or the ensemble map is not 2-D.
    ValueError
        If the GT or a Mask R-CNN result is not a valid label image.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> prepared = prepare_sample(ValidationSample("a", gt, l2x, None, e))
    >>> prepared.half2.shape, int(prepared.half4.max())  # no 4x result: all zeros
    ((16, 16), 0)
    """
    gt = _labels(sample.gt, f"{sample.name}: ground truth")
    shape_2x = (2 * gt.shape[0], 2 * gt.shape[1])
    half2, area2 = _prepare_scale(sample.l2x_raw, shape_2x)
    half4, area4 = _prepare_scale(sample.l4x_raw, shape_2x)
    for what, half in (("2x", half2), ("4x", half4)):
        if half.shape != gt.shape:
            raise NucleaizerError(
                f"{sample.name}: the {what} labels give {half.shape} after downscaling but the ground truth "
                f"is {gt.shape} (the Mask R-CNN outputs must be at twice the image size)"
            )
    e = sample.ensemble16
    if e is not None:
        e = np.asarray(e)
        if e.ndim != 2:
            raise NucleaizerError(f"{sample.name}: the ensemble map must be 2-D, got shape {e.shape}")
        if e.shape != gt.shape:
            e = _resize_to(e, gt.shape)
    return PreparedSample(sample.name, gt, half2, area2, half4, area4, e)


def prepare_validation(samples: Sequence[ValidationSample]) -> list[PreparedSample]:
    """`prepare_sample` for every validation image, in order.

    Parameters
    ----------
    samples : sequence of ValidationSample
        At least one validation image.

    Returns
    -------
    list of PreparedSample
        One prepared image per sample.

    Raises
    ------
    NucleaizerError
        If `samples` is empty, or as `prepare_sample`.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> [p.name for p in prepare_validation([ValidationSample("a", gt, l2x, None, e)])]
    ['a']
    """
    if not samples:
        raise NucleaizerError("the parameter search needs at least one validation image")
    return [prepare_sample(s) for s in samples]


def _sample_score(s: PreparedSample, p: PostprocessParams, faithful_q5: bool) -> float:
    if s.ensemble16 is None:
        return 0.0  # missing prediction
    l2, l4 = s.at_min_size(p.min_size)
    master = merge_for_search(l2, l4, p, faithful_q5=faithful_q5)
    pred = refine_with_unet(master, s.ensemble16, p, connectivity=8)
    return score_image(s.gt, pred, s.name).dsb


def evaluate_params(prepared: Sequence[PreparedSample], params, faithful_q5: bool = False) -> float:
    """Mean DSB score of the search's post-processing with ``params`` over the prepared images.

    Images whose score is undefined (no GT object and no prediction, 0/0) are left out of the mean (the
    original's mean would turn NaN); if no image has a defined score the result is 0.

    Per image: small-object removal at `min_size` and downscaling (a lookup on the prepared image),
    `merge_for_search`, `refine_with_unet` with an 8-connected component filter, and the DSB score
    (docs/method.md §7.2); an image without ensemble map scores 0.

    Parameters
    ----------
    prepared : sequence of PreparedSample
        Prepared validation images (`prepare_sample`).
    params : PostprocessParams, sequence, dict or None
        Anything `as_params` accepts (None = defaults).
    faithful_q5 : bool, default False
        Evaluate the original's merge of the search (quirk Q5) instead of the real greedy merge.

    Returns
    -------
    float
        Mean DSB score in [0, 1].

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> prepared = [prepare_sample(ValidationSample("a", gt, l2x, None, e))]
    >>> evaluate_params(prepared, None)
    1.0
    >>> evaluate_params(prepared, {"min_size": 300})  # the object is removed
    0.0
    """
    p = as_params(params)
    scores = np.array([_sample_score(s, p, faithful_q5) for s in prepared], dtype=np.float64)
    defined = scores[~np.isnan(scores)]
    return float(defined.mean()) if defined.size else 0.0


@dataclass
class SearchResult:
    """What `search_parameters` found, and how the search went.

    `to_dict` gives the JSON form that `write_search_result` writes and `read_params` reads back.

    Attributes
    ----------
    best_vector : tuple of int
        The 9 parameters with the highest mean DSB score among the vectors evaluated (the default vector
        counts only when it lies within the bounds).
    best_score : float
        Mean DSB score of `best_vector`.
    default_score : float
        Mean DSB score of the shipped defaults `DEFAULT`.
    x0_score : float
        Mean DSB score of the start point (`x0` clipped to the bounds).
    n_evaluations : int
        Number of distinct vectors scored.
    elapsed_s : float
        Search time in seconds (the once-only preparation excluded), rounded to milliseconds.
    stop_reason : str
        ``"converged"``, ``"generations"``, ``"time_limit"`` or ``"max_evaluations"``.
    history : list of dict
        Every evaluation in order: ``{"vector": [...], "score": float, "elapsed_s": float}``.
    faithful_q5 : bool
        Whether the original's merge (quirk Q5) was evaluated.
    seed : int or None
        Seed of the optimiser.
    time_limit_s : float
        Wall-clock limit of the search, in seconds.
    n_images : int
        Number of validation images.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> result = search_parameters([ValidationSample("a", gt, l2x, None, e)], max_evaluations=20)
    >>> result.stop_reason, result.n_evaluations, result.best_score
    ('max_evaluations', 20, 1.0)
    >>> result.best_params.to_vector() == list(DEFAULT)
    True
    >>> result.to_dict()["format"]
    'nucleaizer-tf postprocess parameter search v1'
    """

    best_vector: tuple
    best_score: float
    default_score: float
    x0_score: float
    n_evaluations: int
    elapsed_s: float
    stop_reason: str
    history: list
    faithful_q5: bool
    seed: Optional[int]
    time_limit_s: float
    n_images: int

    @property
    def best_params(self) -> PostprocessParams:
        """`best_vector` as a PostprocessParams."""
        return PostprocessParams.from_vector(self.best_vector)

    def to_dict(self) -> dict:
        """JSON-ready dict: the fields plus the format tag, best parameters by name, default and x0
        vectors, bounds and parameter names."""
        return {
            "format": RESULT_FORMAT,
            "best_vector": list(self.best_vector),
            "best_params": self.best_params.to_dict(),
            "best_score": self.best_score,
            "default_vector": list(DEFAULT),
            "default_score": self.default_score,
            "x0_vector": list(X0),
            "x0_score": self.x0_score,
            "lower": list(LOWER),
            "upper": list(UPPER),
            "parameter_names": list(PARAM_NAMES),
            "n_evaluations": self.n_evaluations,
            "elapsed_s": self.elapsed_s,
            "stop_reason": self.stop_reason,
            "faithful_q5": self.faithful_q5,
            "seed": self.seed,
            "time_limit_s": self.time_limit_s,
            "n_images": self.n_images,
            "history": self.history,
        }


class _Stop(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def search_parameters(
    samples: Sequence,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    max_evaluations: Optional[int] = None,
    population: int = 100,
    generations: int = 300,
    tol: float = 0.01,
    seed: Optional[int] = 0,
    faithful_q5: bool = False,
    lower: Sequence[int] = LOWER,
    upper: Sequence[int] = UPPER,
    x0: Sequence[int] = X0,
    progress: Optional[Callable[[int, float, float], None]] = None,
) -> SearchResult:
    """Search the 9 integer parameters in [lower, upper] maximising the mean DSB score (docs/method.md §5.8).

    ``samples``: ValidationSample or PreparedSample objects (preparation is done once here if needed, before
    the clock of ``time_limit_s`` starts).
    The default vector and ``x0`` are evaluated first (so the result is never worse than either; the
    default counts only when it lies within the bounds), then differential evolution with
    ``integrality`` runs from ``x0`` (population ``population`` rounded up to a multiple of 9,
    ``generations`` generations) until it converges, ``max_evaluations`` distinct vectors have been scored
    (at least 2: the default and x0), or ``time_limit_s`` has passed (checked at every evaluation and
    after every generation).  Repeated integer vectors are answered from a cache.
    ``progress(evaluations, best_score, elapsed_s)`` is called after each new evaluation.  Deterministic
    for a given seed unless the time limit cuts the run.

    Parameters
    ----------
    samples : sequence of ValidationSample or PreparedSample
        Validation images; at least one.
    time_limit_s : float, default 1800.0, keyword-only
        Wall-clock limit in seconds (`DEFAULT_TIME_LIMIT_S`; the original code used 30 s,
        `ORIGINAL_TIME_LIMIT_S`, quirk Q6).
    max_evaluations : int or None, default None, keyword-only
        Stop after this many distinct vectors (at least 2); None: no limit.
    population : int, default 100, keyword-only
        Population size of the original GA; differential evolution uses ``ceil(population / 9)`` per
        parameter.
    generations : int, default 300, keyword-only
        Maximum number of generations.
    tol : float, default 0.01, keyword-only
        Relative convergence tolerance of `differential_evolution`.
    seed : int or None, default 0, keyword-only
        Seed of the optimiser.
    faithful_q5 : bool, default False, keyword-only
        Evaluate the original's merge of the search (quirk Q5).
    lower, upper : sequence of int, default LOWER, UPPER, keyword-only
        9 bounds each, lower <= upper; equal bounds fix a parameter (all equal: no search beyond the
        default and x0).
    x0 : sequence of int, default X0, keyword-only
        Start point, clipped to the bounds.
    progress : callable or None, default None, keyword-only
        ``progress(evaluations, best_score, elapsed_s)``, called after each new evaluation.

    Returns
    -------
    SearchResult
        Best vector and score, the scores of the defaults and of x0, the history and why the search
        stopped.

    Raises
    ------
    NucleaizerError
        If there is no validation image (or as `prepare_sample`).
    ValueError
        If `lower`/`upper` are not 9 integers with lower <= upper.

    Examples
    --------
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> result = search_parameters([ValidationSample("a", gt, l2x, None, e)], max_evaluations=20, seed=0)
    >>> result.stop_reason, result.n_evaluations, result.default_score, result.best_score
    ('max_evaluations', 20, 1.0, 1.0)

    A real search on validation folders:

    >>> samples = load_validation_folders("gt", "rcnn-2x", "rcnn-4x", "ensemble")  # doctest: +SKIP
    >>> result = search_parameters(samples, time_limit_s=1800, seed=0)  # doctest: +SKIP
    """
    prepared = [s if isinstance(s, PreparedSample) else prepare_sample(s) for s in samples]
    if not prepared:
        raise NucleaizerError("the parameter search needs at least one validation image")
    t0 = time.monotonic()  # the time limit covers the search, not the once-only preparation
    lo = np.array([int(v) for v in lower], dtype=np.int64)
    hi = np.array([int(v) for v in upper], dtype=np.int64)
    if lo.size != 9 or hi.size != 9 or np.any(lo > hi):
        raise ValueError("lower/upper must be 9 integers with lower <= upper")
    start = np.clip(np.array([int(v) for v in x0], dtype=np.int64), lo, hi)

    cache: dict[tuple, float] = {}
    history: list[dict] = []
    best = {"vector": None, "score": -math.inf}

    def score_of(vec, candidate: bool = True) -> float:
        key = tuple(int(v) for v in vec)
        if key in cache:
            return cache[key]
        if max_evaluations is not None and len(cache) >= max(int(max_evaluations), 2):
            raise _Stop("max_evaluations")
        if time.monotonic() - t0 >= time_limit_s and len(cache) >= 2:
            raise _Stop("time_limit")
        score = evaluate_params(prepared, key, faithful_q5)
        cache[key] = score
        elapsed = time.monotonic() - t0
        history.append({"vector": list(key), "score": score, "elapsed_s": round(elapsed, 3)})
        if candidate and score > best["score"]:
            best["vector"], best["score"] = key, score
        if progress is not None:
            progress(len(cache), best["score"], elapsed)
        return score

    def objective(x) -> float:
        vec = np.clip(np.round(np.asarray(x, dtype=np.float64)), lo, hi).astype(np.int64)
        return 1.0 - score_of(vec)

    default_score = score_of(DEFAULT, candidate=bool(np.all((lo <= DEFAULT) & (DEFAULT <= hi))))
    x0_score = score_of(start)

    timed_out = []

    def callback(*_args, **_kwargs):  # once per generation (legacy and new SciPy call styles)
        if time.monotonic() - t0 >= time_limit_s:
            timed_out.append(True)
            return True
        return False

    seed_kw = "rng" if "rng" in inspect.signature(differential_evolution).parameters else "seed"

    stop_reason = "converged"
    if np.any(lo < hi):
        try:
            res = differential_evolution(
                objective,
                bounds=list(zip(lo.tolist(), hi.tolist())),
                integrality=[True] * 9,
                x0=start,
                popsize=max(1, math.ceil(population / 9)),
                maxiter=generations,
                tol=tol,
                **{seed_kw: seed},
                polish=False,
                callback=callback,
                updating="immediate",
                workers=1,
            )
            if timed_out:
                stop_reason = "time_limit"
            elif res.nit >= generations:
                stop_reason = "generations"
        except _Stop as stop:
            stop_reason = stop.reason

    return SearchResult(
        best_vector=tuple(best["vector"]),
        best_score=float(best["score"]),
        default_score=float(default_score),
        x0_score=float(x0_score),
        n_evaluations=len(cache),
        elapsed_s=round(time.monotonic() - t0, 3),
        stop_reason=stop_reason,
        history=history,
        faithful_q5=bool(faithful_q5),
        seed=seed,
        time_limit_s=float(time_limit_s),
        n_images=len(prepared),
    )


def _find_stem(folder, stem: str, extensions) -> Optional[str]:
    from pathlib import Path

    if folder is None:
        return None
    for ext in extensions:
        for candidate in (Path(folder) / f"{stem}{ext}", Path(folder) / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return str(candidate)
    return None


def load_validation_folders(gt_dir, maskrcnn_2x_dir, maskrcnn_4x_dir, ensemble_dir) -> list[ValidationSample]:
    """Validation samples from folders laid out as the original's (docs/method.md §5.8).

    GT label images (``<name>.tif[f]``/``.png``) define the set; ``<name>`` is looked up in the 2x and 4x
    Mask R-CNN folders (label images) and the ensemble folder (16-bit PNG, or TIFF); a missing file
    gives None.  Extensions are also tried in upper case.

    Parameters
    ----------
    gt_dir : str or os.PathLike
        Folder of ground-truth label images; samples come in name order.
    maskrcnn_2x_dir, maskrcnn_4x_dir : str or os.PathLike or None
        Folders of the raw 2x / 4x Mask R-CNN label images (at twice the image size); None: all missing.
    ensemble_dir : str or os.PathLike or None
        Folder of the single-channel 16-bit U-Net ensemble maps; None: all missing.

    Returns
    -------
    list of ValidationSample
        One sample per GT image.

    Raises
    ------
    NucleaizerError
        If `gt_dir` holds no label image or cannot be listed, an ensemble map has channels, or a file
        cannot be read (`ImageReadError`).

    Examples
    --------
    >>> samples = load_validation_folders("val/gt", "val/rcnn-2x", "val/rcnn-4x", "val/ensemble")  # doctest: +SKIP
    >>> prepared = prepare_validation(samples)  # doctest: +SKIP
    """
    from ..io import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, list_images, read_image, read_labels

    samples = []
    for path in list_images(gt_dir, LABEL_EXTENSIONS):
        stem = path.stem
        l2 = _find_stem(maskrcnn_2x_dir, stem, LABEL_EXTENSIONS)
        l4 = _find_stem(maskrcnn_4x_dir, stem, LABEL_EXTENSIONS)
        e = _find_stem(ensemble_dir, stem, IMAGE_EXTENSIONS)
        ensemble = read_image(e) if e else None
        if ensemble is not None and ensemble.ndim != 2:
            raise NucleaizerError(f"{e}: the ensemble map must be a single-channel 16-bit image")
        samples.append(
            ValidationSample(
                stem,
                read_labels(path),
                read_labels(l2) if l2 else None,
                read_labels(l4) if l4 else None,
                ensemble,
            )
        )
    if not samples:
        raise NucleaizerError(f"{gt_dir}: no ground-truth label images found")
    return samples


def write_search_result(path, result: SearchResult):
    """Write the result as JSON, atomically; ``read_params(path)`` reads back its best vector.

    Parameters
    ----------
    path : str or os.PathLike
        Output JSON file; missing parent folders are created.
    result : SearchResult
        The search result (written as `SearchResult.to_dict`).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import os, tempfile
    >>> from nucleaizer_tf.postprocess.params import read_params
    >>> gt = np.zeros((16, 16), dtype=np.int32)
    >>> gt[4:12, 4:12] = 1
    >>> l2x = np.zeros((32, 32), dtype=np.int32)
    >>> l2x[8:24, 8:24] = 1
    >>> e = np.zeros((16, 16), dtype=np.uint16)
    >>> e[4:12, 4:12] = 65535
    >>> result = search_parameters([ValidationSample("a", gt, l2x, None, e)], max_evaluations=2)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_search_result(os.path.join(tmp, "search.json"), result)
    ...     read_params(path) == result.best_params
    True
    """
    from ..io import write_json

    return write_json(path, result.to_dict())
