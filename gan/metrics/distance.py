"""FID and KID from feature sets (Heusel et al. 2017; Binkowski et al. 2018)."""

import numpy as np


def trace_sqrt_product(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """tr sqrt(C_a C_b) for the covariances of two (N, D) feature sets, without `sqrtm`.

    scipy's `sqrtm` of a 2048x2048 product takes tens of seconds on two cores. The
    eigenvalues of C_a C_b are real and non-negative, so the trace of its square root is
    the sum of their square roots, computed in whichever space is smaller:
    - few samples: they are the squared singular values of A B^T / sqrt((n_a-1)(n_b-1))
      (A, B the centred features), an n_a x n_b matrix;
    - many samples: those of the symmetric C_a^1/2 C_b C_a^1/2, via two `eigh`.
    """
    a = features_a - features_a.mean(0)
    b = features_b - features_b.mean(0)
    n_a, n_b, d = len(a), len(b), a.shape[1]
    if max(n_a, n_b) <= d:
        singular = np.linalg.svd(a @ b.T, compute_uv=False)
        return float(singular.sum() / np.sqrt((n_a - 1) * (n_b - 1)))
    cov_a = a.T @ a / (n_a - 1)
    cov_b = b.T @ b / (n_b - 1)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID: the Frechet distance between Gaussians fitted to two (N, D) feature sets."""
    diff = features_a.mean(0) - features_b.mean(0)
    trace_a = np.var(features_a, axis=0, ddof=1).sum()
    trace_b = np.var(features_b, axis=0, ddof=1).sum()
    value = diff @ diff + trace_a + trace_b - 2.0 * trace_sqrt_product(features_a, features_b)
    return float(max(value, 0.0))


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """KID: the unbiased MMD^2 with kernel (x.y / d + 1)^3, averaged over random subsets."""
    d = features_a.shape[1]
    m = min(len(features_a), len(features_b), subset_size)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        a = features_a[rng.choice(len(features_a), m, replace=False)]
        b = features_b[rng.choice(len(features_b), m, replace=False)]
        k_aa = (a @ a.T / d + 1) ** 3
        k_bb = (b @ b.T / d + 1) ** 3
        k_ab = (a @ b.T / d + 1) ** 3
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        total += within - 2.0 * k_ab.mean()
    return float(total / subsets)
