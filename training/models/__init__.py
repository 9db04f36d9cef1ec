"""Networks only (torch): they can be built and exported without data or logging code."""
from .discriminator import Discriminator
from .refiner import Refiner, SpatialAttentionResBlock
from .reggan import RegGAN
from .stage1 import LocalRegression, apply_flow, ellipse_region, fit_mean_flow, fit_ridge

__all__ = [
           "Discriminator",
           "LocalRegression",
           "Refiner",
           "RegGAN",
           "SpatialAttentionResBlock",
           "apply_flow",
           "ellipse_region",
           "fit_mean_flow",
           "fit_ridge",
]
