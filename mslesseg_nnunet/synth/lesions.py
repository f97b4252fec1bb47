"""MS-like lesions: placement, shape, longitudinal change and rendering.

A lesion is a union of ellipsoids ("blobs") with an irregular, lesion-specific
surface, clipped to the tissue it may occupy (white matter; white matter and
cortex for juxtacortical lesions). Everything lives on the template grid
(1 mm FSL MNI152); scans sample the rendered maps through their own warp.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mslesseg_nnunet.components import component_sizes, label_components
from mslesseg_nnunet.synth.anatomy import template
from mslesseg_nnunet.synth.grids import MNI_SHAPE
from mslesseg_nnunet.synth.regions import SITE_WEIGHTS, regions

MODALITIES = ("FLAIR", "T1", "T2")
#: Lesions above this volume (mm3) are built as confluent chains along the ventricles.
CONFLUENT_MM3 = 1500.0
_BLOB_MM3 = 700.0


@dataclass(frozen=True)
class Blob:
    """An ellipsoid: centre (template voxels = mm), semi-axes (mm), rotation (columns = axes)."""

    center: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray


@dataclass(frozen=True)
class Lesion:
    """One lesion (or an unlabelled mimic) at one timepoint."""

    blobs: tuple
    site: str
    contrast: dict                      # modality -> intensity factor relative to tissue
    shape_seed: int
    labelled: bool = True
    scale: float = 1.0                  # growth factor applied to all semi-axes


@dataclass
class LesionMaps:
    """Rendered lesions on the template grid."""

    fraction: np.ndarray                # labelled-lesion fraction per voxel, 0..1
    delta: dict                         # modality -> relative intensity change


def _random_rotation(rng: np.random.Generator, first_axis: np.ndarray | None = None) -> np.ndarray:
    """A random rotation matrix; its first column is ``first_axis`` when given."""
    a = rng.normal(size=(3, 3))
    if first_axis is not None and np.linalg.norm(first_axis) > 1e-6:
        a[:, 0] = first_axis
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))


def _ventricle_normal(center: np.ndarray) -> np.ndarray:
    """Unit direction away from the nearest ventricle at ``center`` (zeros if flat)."""
    dist = regions().ventricle_distance
    i = np.clip(np.round(center).astype(int), 1, np.array(MNI_SHAPE) - 2)
    grad = np.array([dist[tuple(i + e)] - dist[tuple(i - e)] for e in np.eye(3, dtype=int)])
    norm = np.linalg.norm(grad)
    return grad / norm if 0 < norm < 100 else np.zeros(3)


def _site_center(rng: np.random.Generator, site: str) -> np.ndarray:
    candidates = regions().sites[site]
    flat = candidates[rng.integers(candidates.size)]
    return np.array(np.unravel_index(flat, MNI_SHAPE), dtype=np.float64) + rng.uniform(-0.5, 0.5, 3)


def _ellipsoid(rng: np.random.Generator, center: np.ndarray, volume_mm3: float,
               elongation: float, axis: np.ndarray | None = None) -> Blob:
    """An ellipsoid of ``volume_mm3`` elongated along ``axis`` (default: the ventricle
    normal, as in Dawson's fingers)."""
    r = (3.0 * volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
    radii = r * np.array([elongation, elongation ** -0.5, elongation ** -0.5])
    radii *= rng.uniform(0.85, 1.15, 3)
    if axis is None:
        axis = _ventricle_normal(center)
    return Blob(center, radii, _random_rotation(rng, axis + rng.normal(0, 0.3, 3)))


def random_ellipsoid(rng: np.random.Generator, center: np.ndarray, volume: float,
                     elongation: float) -> Blob:
    """An ellipsoid of ``volume`` (cubic units of ``center``) elongated along a random axis."""
    return _ellipsoid(rng, center, volume, elongation, axis=rng.normal(size=3))


def _contrast(rng: np.random.Generator, labelled: bool) -> dict:
    """Per-lesion intensity factors: hyperintense on FLAIR/T2, hypo- to isointense on T1."""
    if not labelled:
        return {"FLAIR": rng.uniform(1.15, 1.35), "T2": rng.uniform(1.2, 1.5),
                "T1": rng.uniform(0.95, 1.02)}
    t1 = rng.uniform(0.55, 0.8) if rng.random() < 0.3 else rng.uniform(0.8, 1.0)
    return {"FLAIR": rng.uniform(1.55, 2.2), "T2": rng.uniform(1.5, 2.3), "T1": t1}


def _confluent_blobs(rng: np.random.Generator, volume_mm3: float) -> list[Blob]:
    """Overlapping ellipsoids walking along the ventricle wall, a few mm from it and
    stretched along it: one confluent periventricular lesion."""
    n = int(np.ceil(volume_mm3 / _BLOB_MM3))
    blob_volume = 1.6 * volume_mm3 / n
    step = 0.9 * (3.0 * blob_volume / (4.0 * np.pi)) ** (1.0 / 3.0)
    center = _site_center(rng, "periventricular")
    heading = rng.normal(size=3)
    blobs = []
    wm, dist = template().wm, regions().ventricle_distance
    hug = rng.uniform(1.5, 4.0)          # preferred distance from the ventricle (mm)
    for _ in range(n):
        blobs.append(_ellipsoid(rng, center, blob_volume * rng.uniform(0.6, 1.4),
                                rng.uniform(1.2, 2.0), axis=heading))
        for _attempt in range(8):
            normal = _ventricle_normal(center)
            direction = heading - normal * (heading @ normal) + rng.normal(0, 0.4, 3)
            direction /= np.linalg.norm(direction) + 1e-9
            candidate = center + step * direction
            idx = tuple(np.clip(np.round(candidate).astype(int), 0, np.array(MNI_SHAPE) - 1))
            if dist[idx] < 15:
                candidate = candidate - _ventricle_normal(candidate) * (dist[idx] - hug)
                idx = tuple(np.clip(np.round(candidate).astype(int), 0, np.array(MNI_SHAPE) - 1))
            if wm[idx] > 0.5:
                center, heading = candidate, direction
                break
            heading = rng.normal(size=3)
    return blobs


def new_lesion(rng: np.random.Generator, volume_mm3: float, labelled: bool = True,
               site: str | None = None) -> Lesion:
    """A lesion of about ``volume_mm3`` (before clipping to tissue) at a random site."""
    if site is None:
        names = list(SITE_WEIGHTS)
        site = names[rng.choice(len(names), p=np.array(list(SITE_WEIGHTS.values())))]
    if labelled and volume_mm3 > CONFLUENT_MM3:
        site, blobs = "periventricular", _confluent_blobs(rng, volume_mm3)
    else:
        elongation = rng.uniform(1.2, 2.2) if site == "periventricular" else rng.uniform(1.0, 1.6)
        blobs = [_ellipsoid(rng, _site_center(rng, site), volume_mm3, elongation)]
    return Lesion(blobs=tuple(blobs), site=site, contrast=_contrast(rng, labelled),
                  shape_seed=int(rng.integers(2**31)), labelled=labelled)


def nominal_volume(lesion: Lesion) -> float:
    """Sum of the lesion's ellipsoid volumes (mm3), before clipping to tissue."""
    return float(sum(4.0 / 3.0 * np.pi * np.prod(b.radii * lesion.scale) for b in lesion.blobs))


def lesion_count_for_load(rng: np.random.Generator, load_mm3: float) -> int:
    """Number of lesions for a lesion load (~4 for 700 mm3, ~40 for 70,000 mm3)."""
    return max(1, int(rng.poisson(3.0 + 18.0 * np.log10(max(load_mm3, 600.0) / 600.0))))


def patient_lesions(rng: np.random.Generator, load_mm3: float) -> list[Lesion]:
    """Lesions of one patient at the first timepoint, with total volume about ``load_mm3``."""
    n = lesion_count_for_load(rng, load_mm3)
    weights = rng.lognormal(0.0, 1.4, n)
    volumes = np.maximum(load_mm3 * weights / weights.sum(), 4.0)
    return [new_lesion(rng, float(v)) for v in volumes]


def mimics(rng: np.random.Generator, n: int) -> list[Lesion]:
    """Unlabelled white-matter hyperintensities (punctate, faint): false-positive bait."""
    return [new_lesion(rng, float(np.exp(rng.uniform(np.log(3), np.log(40)))), labelled=False,
                       site=rng.choice(["deep", "periventricular", "juxtacortical"]))
            for _ in range(n)]


def evolve(rng: np.random.Generator, lesions: list[Lesion], new_rate: float = 1.0) -> list[Lesion]:
    """The lesions at the next timepoint: each persists, grows, shrinks or resolves,
    and new lesions appear (Poisson ``new_rate``)."""
    out = []
    for lesion in lesions:
        u = rng.random()
        if u < 0.6:
            factor = rng.uniform(0.97, 1.03)
        elif u < 0.8:
            factor = rng.uniform(1.05, 1.25)
        elif u < 0.96 or len(lesion.blobs) > 1:
            factor = rng.uniform(0.75, 0.95)
        else:
            continue
        out.append(replace(lesion, scale=lesion.scale * factor))
    n_new = int(rng.poisson(new_rate))
    out += [new_lesion(rng, float(np.exp(rng.uniform(np.log(10), np.log(400)))))
            for _ in range(n_new)]
    return out


def _irregularity(seed: int, points: np.ndarray, wavelength_mm: float) -> np.ndarray:
    """A smooth random function of position, fixed per lesion (so shapes persist in time)."""
    rng = np.random.default_rng(seed)
    value = np.zeros(points.shape[1:], dtype=np.float32)
    k = 5
    for _ in range(k):
        w = rng.normal(size=3)
        w *= 2 * np.pi / (wavelength_mm * rng.uniform(0.7, 1.4) * np.linalg.norm(w))
        phase = rng.uniform(0, 2 * np.pi)
        value += np.sin(np.tensordot(w.astype(np.float32), points, axes=1) + np.float32(phase))
    return value / np.float32(np.sqrt(k / 2))


def _allowed_tissue(site: str, box: tuple) -> np.ndarray:
    """How much of each voxel a lesion of ``site`` may occupy (0..1)."""
    tpl = template()
    wm, gm, csf = tpl.wm[box], tpl.gm[box], tpl.csf[box]
    tissue = wm + 0.7 * gm if site == "juxtacortical" else wm + 0.15 * gm
    return np.clip((tissue - 0.2) / 0.4, 0.0, 1.0) * (csf < 0.5)


def _blob_box(blob: Blob, radii: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Integer corners (lo inclusive, hi exclusive) of the box around a blob in a grid of ``shape``."""
    reach = radii.max() * 1.6 + 2.0
    lo = np.maximum(np.floor(blob.center - reach).astype(int), 0)
    hi = np.minimum(np.ceil(blob.center + reach).astype(int) + 1, shape)
    return lo, hi


def render_one(lesion: Lesion, shape: tuple = MNI_SHAPE, allowed: np.ndarray | None = None) -> tuple:
    """One lesion inside its bounding box: (box slices, mask fraction, intensity signal).

    By default on the template grid, clipped to the template tissue of the
    lesion's site; else on a grid of ``shape`` (voxel = unit of the blobs),
    clipped to ``allowed`` (how much of each voxel the lesion may occupy, 0..1).
    """
    radii = [b.radii * lesion.scale for b in lesion.blobs]
    boxes = [_blob_box(b, r, shape) for b, r in zip(lesion.blobs, radii)]
    lo = np.min([b[0] for b in boxes], axis=0)
    hi = np.max([b[1] for b in boxes], axis=0)
    if np.any(hi <= lo):
        return None, None, None
    level = np.full(tuple(hi - lo), np.inf, dtype=np.float32)
    for blob, r, (blo, bhi) in zip(lesion.blobs, radii, boxes):
        if np.any(bhi <= blo):
            continue
        axes = [np.arange(a, b, dtype=np.float32) - np.float32(c)
                for a, b, c in zip(blo, bhi, blob.center)]
        inv = (blob.rotation / r).T.astype(np.float32)      # row d: axis d / radius d
        sq = np.zeros(tuple(bhi - blo), dtype=np.float32)
        for d in range(3):
            u = (inv[d, 0] * axes[0][:, None, None] + inv[d, 1] * axes[1][None, :, None]
                 + inv[d, 2] * axes[2][None, None, :])
            sq += u * u
        sub = tuple(slice(a - o, b - o) for a, b, o in zip(blo, bhi, lo))
        np.minimum(level[sub], np.sqrt(sq), out=level[sub])
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    points = np.stack(np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi)],
                                  indexing="ij"))
    r_typ = float(np.mean([np.exp(np.log(r).mean()) for r in radii]))
    level += 0.22 * _irregularity(lesion.shape_seed, points, max(2.5, 1.5 * r_typ))
    tissue = _allowed_tissue(lesion.site, box) if allowed is None else allowed[box]
    # Both maps cross 0.5 on the same surface (level 1): the mask edge is ~1 mm wide,
    # the signal fades over ~3.5 mm and is patchy inside.
    inside = (1.0 - level) * r_typ
    fraction = np.clip(0.5 + inside, 0.0, 1.0) * tissue
    patchy = 0.92 + 0.08 * _irregularity(lesion.shape_seed + 1, points, max(6.0, r_typ))
    signal = np.clip(0.5 + inside / 3.5, 0.0, 1.0) * tissue * np.where(inside > 0, patchy, 1.0)
    specks = _specks(fraction)
    if specks is not None:
        fraction[specks] = np.minimum(fraction[specks], 0.45)
        signal[specks] = np.minimum(signal[specks], 0.45)
    return box, fraction, signal


def _specks(fraction: np.ndarray, min_voxels: int = 4) -> np.ndarray | None:
    """Detached specks of ``fraction >= 0.5`` (< ``min_voxels``, not the main part), or None."""
    labels, n = label_components(fraction >= 0.5, connectivity=6)
    if n <= 1:
        return None
    sizes = component_sizes(labels, n)
    specks = np.flatnonzero(sizes < min_voxels) + 1
    specks = specks[specks != np.argmax(sizes) + 1]
    return np.isin(labels, specks) if specks.size else None


def render(lesions: list[Lesion]) -> LesionMaps:
    """Render lesions and mimics on the template grid.

    ``fraction`` holds the labelled lesions only; ``delta`` holds, per modality,
    the relative intensity change of every lesion and mimic (max for
    hyperintense, min for hypointense changes).
    """
    fraction = np.zeros(MNI_SHAPE, dtype=np.float32)
    delta = {m: np.zeros(MNI_SHAPE, dtype=np.float32) for m in MODALITIES}
    for lesion in lesions:
        box, frac, signal = render_one(lesion)
        if box is None:
            continue
        if lesion.labelled:
            np.maximum(fraction[box], frac, out=fraction[box])
        for m in MODALITIES:
            change = signal * np.float32(lesion.contrast[m] - 1.0)
            combine = np.maximum if lesion.contrast[m] >= 1.0 else np.minimum
            combine(delta[m][box], change, out=delta[m][box])
    return LesionMaps(fraction=fraction, delta=delta)
