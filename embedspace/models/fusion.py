"""Fusing a clip's acoustic vector with the text vector of its transcript.

The acoustic tower hears manner (whispered, shouted, slow) and the words it was trained
on; the text tower knows every word. A weighted sum of the two unit vectors, normalised
again, keeps both: ``fused = normalise((1 - w) * acoustic + w * text(transcript))``. A clip
without a transcript (silence, music, nothing recognised) keeps its acoustic vector.
"""

from __future__ import annotations

import numpy as np


def fuse_transcript(acoustic: np.ndarray, transcript: np.ndarray, heard: np.ndarray, weight: float) -> np.ndarray:
    """The fused audio vectors.

    Args:
        acoustic: ``(N, D)`` float32, L2-normalised: the audio tower's vectors.
        transcript: ``(N, D)`` float32, L2-normalised: the text tower's vectors of the transcripts
            (rows where ``heard`` is False are ignored and may be anything finite).
        heard: ``(N,)`` bool: whether each clip has a non-empty transcript.
        weight: ``w`` in [0, 1], the transcript's share; 0 returns ``acoustic`` unchanged.

    Returns:
        ``(N, D)`` float32, L2-normalised, row-aligned with ``acoustic``.

    Raises:
        ValueError: ``weight`` outside [0, 1] or shapes that do not match.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the transcript weight must be in [0, 1], got {weight!r}")
    if acoustic.shape != transcript.shape or heard.shape != acoustic.shape[:1]:
        raise ValueError(f"acoustic {acoustic.shape}, transcript {transcript.shape} and heard {heard.shape} vectors do not match")
    if weight == 0.0 or not heard.any():
        return acoustic.astype(np.float32, copy=True)
    mixed = np.where(heard[:, None], (1.0 - weight) * acoustic + weight * transcript, acoustic)
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    # a clip whose two vectors cancel out exactly keeps its acoustic vector
    return np.where(norms > 1e-6, mixed / np.maximum(norms, 1e-12), acoustic).astype(np.float32)
