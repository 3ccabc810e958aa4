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
from ..metrics import score_image
from .cleanup import _compact, _labels, absorb_holes, merge_touching
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
    16-bit U-Net ensemble map or None (no prediction: the image scores 0)."""

    name: str
    gt: np.ndarray
    l2x_raw: Optional[np.ndarray] = None
    l4x_raw: Optional[np.ndarray] = None
    ensemble16: Optional[np.ndarray] = None


@dataclass(frozen=True)
class PreparedSample:
    """A validation image after the once-only steps; see prepare_sample."""

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
    return _compact(lut[half.astype(np.intp, copy=False)])


def _prepare_scale(raw, shape_2x: tuple) -> tuple[np.ndarray, np.ndarray]:
    if raw is None:  # quirk Q14 fixed: zeros of the right (2x) size instead of ones of the wrong size
        raw = np.zeros(shape_2x, dtype=np.uint16)
    lab = merge_touching(absorb_holes(raw), 8)
    area = np.bincount(lab.ravel().astype(np.intp, copy=False)) if lab.size else np.zeros(1, np.int64)
    return _compact(np.asarray(matlab_nearest_half(lab))), area


def prepare_sample(sample: ValidationSample) -> PreparedSample:
    """Once-only preparation of one validation image (docs/method.md §5.8 "Preparation", quirk Q14 fixed)."""
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
    """
    p = as_params(params)
    scores = np.array([_sample_score(s, p, faithful_q5) for s in prepared], dtype=np.float64)
    defined = scores[~np.isnan(scores)]
    return float(defined.mean()) if defined.size else 0.0


@dataclass
class SearchResult:
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
        return PostprocessParams.from_vector(self.best_vector)

    def to_dict(self) -> dict:
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
    The default vector and ``x0`` are evaluated first (so the result is never worse than either), then
    differential evolution with ``integrality`` runs from ``x0`` (population ``population`` rounded up to
    a multiple of 9, ``generations`` generations) until it converges, ``max_evaluations`` distinct vectors
    have been scored (at least 2: the default and x0), or ``time_limit_s`` has passed (checked at every evaluation).  Repeated integer
    vectors are answered from a cache.  ``progress(evaluations, best_score, elapsed_s)`` is called after
    each new evaluation.  Deterministic for a given seed unless the time limit cuts the run.
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
    """Validation samples from folders laid out as the original's (docs/method.md §5.8): GT label images
    (``<name>.tif[f]``/``.png``) define the set; ``<name>`` is looked up in the 2x and 4x Mask R-CNN folders
    (label images) and the ensemble folder (16-bit PNG, or TIFF); a missing file gives None."""
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
    """Write the result as JSON, atomically; ``read_params(path)`` reads back its best vector."""
    from ..io import write_json

    return write_json(path, result.to_dict())
