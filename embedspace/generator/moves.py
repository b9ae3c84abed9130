"""Moves in the embedding space: paths and points to generate from.

All inputs and outputs are float32 L2-normalised vectors of dimension D. Spherical
linear interpolation follows Shoemake (1985), "Animating rotation with quaternion
curves" (and White, 2016, "Sampling Generative Networks", for latent spaces);
arithmetic is the word-vector analogy ``a - b + c`` (Mikolov et al., 2013),
renormalised onto the sphere.
"""

from __future__ import annotations

import numpy as np

from embedspace.vectors import unit_vector

INTERPOLATION_METHODS = ("slerp", "linear")


def _unit(vector: np.ndarray | list[float], name: str) -> np.ndarray:
    """A (D,) float64 unit vector (moves compute in float64); ValueError for bad shapes or values."""
    return unit_vector(vector, name=name).astype(np.float64)


def _same_dimension(**vectors: np.ndarray) -> None:
    dims = {name: v.shape[0] for name, v in vectors.items()}
    if len(set(dims.values())) > 1:
        raise ValueError(f"vectors have different dimensions {dims}; they must come from one space.")


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """Points from ``a`` to ``b`` inclusive.

    Args:
        a, b: (D,) vectors (renormalised first).
        steps: number of points, >= 2; row 0 is ``a`` and row ``steps - 1`` is ``b``.
        method: "slerp" (constant angular speed along the great circle) or "linear"
            (straight line, each point renormalised).

    Returns:
        (steps, D) float32, unit rows.
    """
    if method not in INTERPOLATION_METHODS:
        raise ValueError(f"method={method!r}; allowed: {INTERPOLATION_METHODS}.")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps={steps}; need an integer >= 2 (both endpoints are included).")
    a, b = _unit(a, "a"), _unit(b, "b")
    _same_dimension(a=a, b=b)
    t = np.linspace(0.0, 1.0, int(steps))[:, None]  # (steps, 1)
    omega = float(np.arccos(np.clip(a @ b, -1.0, 1.0)))
    if method == "linear" or omega < 1e-6:
        path = (1 - t) * a + t * b
    else:
        if np.pi - omega < 1e-6:
            raise ValueError("a and b are opposite points; the great circle between them is undefined.")
        path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    norms = np.linalg.norm(path, axis=1, keepdims=True)
    if (norms < 1e-9).any():
        raise ValueError("the linear path passes through the origin (a and b are opposite); use slerp.")
    path = path / norms
    path[0], path[-1] = a, b  # exact endpoints
    return path.astype(np.float32)


def arithmetic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a - b + c``, renormalised: "a is to b as ? is to c". Returns (D,) float32."""
    a, b, c = _unit(a, "a"), _unit(b, "b"), _unit(c, "c")
    _same_dimension(a=a, b=b, c=c)
    result = a - b + c
    norm = np.linalg.norm(result)
    if norm < 1e-9:
        raise ValueError("a - b + c is the zero vector (a equals b and c is opposite); pick other points.")
    return (result / norm).astype(np.float32)


def random_walk(start: np.ndarray, steps: int, step_size: float = 0.1, seed: int = 0) -> np.ndarray:
    """A random walk on the unit sphere around ``start``.

    Each step moves ``step_size`` radians along a great circle in a uniformly random
    tangent direction, so consecutive points have cosine similarity ``cos(step_size)``.

    Args:
        start: (D,) vector (renormalised first).
        steps: number of points, >= 1; row 0 is ``start``.
        step_size: angle of each step in radians, >= 0 (0.05–0.3 stays near a concept).
        seed: seed of the walk's own ``numpy.random.Generator``.

    Returns:
        (steps, D) float32, unit rows.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps}; need an integer >= 1 (row 0 is the start).")
    if not (np.isfinite(step_size) and step_size >= 0):
        raise ValueError(f"step_size={step_size}; need an angle in radians >= 0.")
    rng = np.random.default_rng(seed)
    x = _unit(start, "start")
    path = [x]
    for _ in range(int(steps) - 1):
        direction = rng.standard_normal(x.shape[0])
        direction -= (direction @ x) * x  # project onto the tangent space at x
        direction /= np.linalg.norm(direction)
        x = np.cos(step_size) * x + np.sin(step_size) * direction
        x /= np.linalg.norm(x)
        path.append(x)
    return np.stack(path).astype(np.float32)
