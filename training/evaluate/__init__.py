"""Evaluation of RegGAN models by judges we did not train (``reggan-plugin evaluate``; docs/EVALUATION.md).

    ExpressionJudge   fer's FER2013 mini-Xception (.tflite, ai-edge-litert): P(expression)
    IdentityJudge     dlib's 128-D face embedding (dlib-bin + face-recognition-models): distances
    frechet_distance  Frechet distance between Gaussians of embeddings (on identity embeddings: NOT FID)
    metrics           L1, PSNR, SSIM (numpy)
    evaluate          copy / stage 1 / RegGAN (/ real target) side by side -> EvalResult
    write_report      report.md, report.json, grid_<expression>.png

The judges' packages are an optional extra; ``judges_unavailable()`` says what is missing.
Importing this package needs neither judge, nor torch.
"""
from __future__ import annotations

from . import metrics
from .frechet import frechet_distance, frechet_distance_gaussians


def judges_unavailable() -> str | None:
    """Why the judges cannot run here (what to install), or None when all can."""
    from . import expression_judge, identity_judge, mouth_shape

    reasons = [r for r in (expression_judge.unavailable_reason(), identity_judge.unavailable_reason(),
                           mouth_shape.unavailable_reason()) if r]
    return "; ".join(reasons) or None


__all__ = ["frechet_distance", "frechet_distance_gaussians", "judges_unavailable", "metrics"]
