"""Per-image style features for clustering images into microscopy styles (substitute for docs/method.md §6.3.1-3).

The original described each image with 248 CellProfiler measurements (intensity and Haralick/Gabor
texture on R, G, B, L*, a*, b*) and turned pairs of images into a "same style?" probability with a
learned classifier (`pretrainedDistanceLearner.mat`). That classifier was never published (a Git-LFS
pointer only), so the distance here is a documented substitute built from three groups of measurements
that describe what a person means by "the same kind of image":

* colour / intensity (54 values): the 1, 5, 25, 50, 75, 95 and 99th percentiles, the mean and the
  standard deviation of each of R, G, B (in [0, 1]) and CIE L*, a*, b* (scaled to about [-1, 1]).
  Percentiles are a histogram in quantile form: they separate fluorescence (dark background, bright
  nuclei) from bright-field stains (light background, dark purple nuclei) and from H&E, and unlike
  fixed-bin histograms they do not depend on the bin edges.
* texture (16 values): grey-level co-occurrence statistics (contrast, dissimilarity, homogeneity,
  energy, correlation, ASM; averaged over 4 directions) at distances 3 and 5 px, the two scales the
  original measured, plus the mean and spread of the gradient magnitude at Gaussian scales 1 and 3.
* nuclei (8 values, from the presegmentation): log median nucleus diameter, log nucleus density,
  foreground fraction, mean solidity and eccentricity, the L*/a*/b* contrast between nuclei and
  background. These tell "large sparse nuclei" from "small crowded ones" in the same stain.

The image's width and height (part of the original vector) are left out: they say which scanner
produced the file, not how the image looks, and the sample data mixes 256×256 and 256×320 crops of
one style.

`style_distances` standardises every feature over the image set, weights each group equally
(each feature by 1/sqrt(group size)) and returns Euclidean distances: the N×N matrix whose rows the
clustering uses as distance profiles, as the original used its classifier's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.feature import graycomatrix, graycoprops
from skimage.measure import regionprops

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
CHANNELS = ("R", "G", "B", "L", "a", "b")
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
GLCM_DISTANCES = (3, 5)
GLCM_LEVELS = 32
GRADIENT_SIGMAS = (1.0, 3.0)


def _names() -> dict[str, list[str]]:
    intensity = [f"{c}_{s}" for c in CHANNELS for s in ("mean", "std", *(f"p{p}" for p in PERCENTILES))]
    texture = [f"glcm{d}_{p}" for d in GLCM_DISTANCES for p in GLCM_PROPS]
    texture += [f"grad{s:g}_{m}" for s in GRADIENT_SIGMAS for m in ("mean", "std")]
    nuclei = ["log_median_diameter", "log_density", "foreground_fraction", "mean_solidity",
              "mean_eccentricity", "contrast_L", "contrast_a", "contrast_b"]
    return {"intensity": intensity, "texture": texture, "nuclei": nuclei}


FEATURE_GROUPS: dict[str, list[str]] = _names()
FEATURE_NAMES: list[str] = [n for names in FEATURE_GROUPS.values() for n in names]


def _six_channels(rgb: np.ndarray) -> np.ndarray:
    """H×W×6 float: R, G, B in [0, 1] and L*/100, a*/100, b*/100."""
    unit = rgb.astype(np.float64) / 255.0
    lab = rgb2lab(unit) / 100.0
    return np.concatenate([unit, lab], axis=-1)


def _intensity(channels: np.ndarray) -> np.ndarray:
    flat = channels.reshape(-1, channels.shape[-1])
    pct = np.percentile(flat, PERCENTILES, axis=0)  # 7×6
    stats = np.concatenate([flat.mean(0)[None], flat.std(0)[None], pct], axis=0)  # 9×6
    return stats.T.ravel()  # channel-major, matching FEATURE_GROUPS["intensity"]


def _texture(gray: np.ndarray) -> np.ndarray:
    levels = np.clip((gray * GLCM_LEVELS).astype(np.uint8), 0, GLCM_LEVELS - 1)
    glcm = graycomatrix(levels, distances=list(GLCM_DISTANCES), angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                        levels=GLCM_LEVELS, symmetric=True, normed=True)
    values = []
    for d in range(len(GLCM_DISTANCES)):
        for prop in GLCM_PROPS:
            v = graycoprops(glcm[:, :, d:d + 1, :], prop).mean()
            values.append(0.0 if not np.isfinite(v) else v)
    for sigma in GRADIENT_SIGMAS:
        magnitude = ndimage.gaussian_gradient_magnitude(gray, sigma)
        values += [magnitude.mean(), magnitude.std()]
    return np.array(values, dtype=np.float64)


def _nuclei(channels: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Nucleus statistics; NaN where there are no nuclei (standardisation then treats them as average)."""
    out = np.full(len(FEATURE_GROUPS["nuclei"]), np.nan)
    if labels is None or not np.any(labels):
        return out
    labels = np.asarray(labels)
    props = regionprops(labels.astype(np.int32))
    areas = np.array([p.area for p in props], dtype=np.float64)
    diameters = np.sqrt(4 * areas / np.pi)
    fg = labels > 0
    out[0] = np.log(np.median(diameters))
    out[1] = np.log(len(props) / labels.size * 1e4)
    out[2] = fg.mean()
    out[3] = np.mean([p.solidity for p in props])
    out[4] = np.mean([p.eccentricity for p in props])
    if (~fg).any():
        out[5:8] = channels[fg][:, 3:6].mean(0) - channels[~fg][:, 3:6].mean(0)
    return out


def image_style_features(image: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Style feature vector (length `len(FEATURE_NAMES)`) of one uint8 H×W×3 RGB image.

    `labels` (the presegmentation, same H×W) adds the nucleus statistics; without it they are NaN.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 H×W×3 RGB image (ValueError otherwise).
    labels : numpy.ndarray, optional
        H×W label image of the same size (ValueError otherwise).

    Returns
    -------
    numpy.ndarray
        float64 vector of the features in `FEATURE_NAMES` order: intensity (54), texture (16),
        nuclei (8).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    >>> labels = np.zeros((32, 32), np.int32)
    >>> labels[4:12, 4:12] = 1
    >>> features = image_style_features(image, labels)
    >>> features.shape, int(np.isnan(image_style_features(image)).sum())  # no labels: 8 NaN
    ((78,), 8)
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got {image.dtype} {image.shape}")
    if labels is not None and np.asarray(labels).shape != image.shape[:2]:
        raise ValueError(f"labels {np.asarray(labels).shape} do not match the image {image.shape[:2]}")
    channels = _six_channels(image)
    gray = np.clip(channels[..., 3], 0.0, 1.0)  # L*/100: perceptual lightness in [0, 1]
    return np.concatenate([_intensity(channels), _texture(gray), _nuclei(channels, labels)])


@dataclass(frozen=True)
class StyleEmbedding:
    """Standardised, group-weighted features (N×F) and their pairwise Euclidean distances (N×N).

    Attributes
    ----------
    weighted : numpy.ndarray
        N×F z-scored features, each multiplied by its group weight / sqrt(group size).
    distances : numpy.ndarray
        N×N Euclidean distances between the rows of `weighted` (zero diagonal).

    Examples
    --------
    >>> embedding = style_distances(np.random.default_rng(0).normal(size=(4, len(FEATURE_NAMES))))
    >>> embedding.weighted.shape, embedding.distances.shape
    ((4, 78), (4, 4))
    """

    weighted: np.ndarray
    distances: np.ndarray


def style_distances(features: np.ndarray, group_weights: dict[str, float] | None = None) -> StyleEmbedding:
    """Distance matrix between images from their feature vectors (rows of `features`, N×F).

    Each feature is z-scored over the N images (NaN -> 0, i.e. the mean; constant features -> 0),
    then multiplied by `group_weight / sqrt(group size)`, so every group contributes equally by
    default whatever its length. Returns the weighted features and the Euclidean distance matrix.

    Parameters
    ----------
    features : numpy.ndarray
        N×F with F = len(FEATURE_NAMES) (ValueError otherwise), e.g. stacked `image_style_features`.
    group_weights : dict of str to float, optional
        Weight per group of `FEATURE_GROUPS` ("intensity", "texture", "nuclei"); missing groups 1.

    Returns
    -------
    StyleEmbedding

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    >>> labels = np.zeros((32, 32), np.int32)
    >>> labels[4:12, 4:12] = 1
    >>> features = np.stack([image_style_features(image, labels), image_style_features(255 - image, labels),
    ...                      image_style_features(image // 2, labels)])
    >>> style_distances(features).distances.round(3)
    array([[0.   , 1.668, 2.89 ],
           [1.668, 0.   , 3.2  ],
           [2.89 , 3.2  , 0.   ]])
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"features must be N×{len(FEATURE_NAMES)}, got {x.shape}")
    mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if x.size else np.zeros(x.shape[1])
    mean = np.nan_to_num(mean)
    centred = np.where(np.isfinite(x), x - mean, 0.0)
    std = np.sqrt((centred ** 2).mean(0))
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-12)
    weights = np.empty(x.shape[1])
    start = 0
    for group, names in FEATURE_GROUPS.items():
        w = 1.0 if group_weights is None else float(group_weights.get(group, 1.0))
        weights[start:start + len(names)] = w / np.sqrt(len(names))
        start += len(names)
    weighted = z * weights
    sq = (weighted ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * weighted @ weighted.T, 0.0)
    distances = np.sqrt(d2)
    np.fill_diagonal(distances, 0.0)
    return StyleEmbedding(weighted, distances)
