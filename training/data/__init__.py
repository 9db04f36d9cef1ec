"""Paired face data for training: layouts, alignment with the runtime's code, caching, split, augmentation.

    scan_dataset(DIR) -> DatasetScan       which files pair up (synthetic / plain / cfee layouts)
    cached_pairs(scan, geometry, cache)    aligned uint8 crops, one transform per pair, cached as .npz
    PairedFaces(sets, expressions, split)  (neutral, target, expression index) in [-1, 1], augmented
"""
from .cache import PairSet, build_pairs, cached_pairs, load_cache
from .crop import CropGeometry, crop_pair, load_rgb
from .dataset import DataSummary, PairedFaces, load_datasets
from .landmarks import find_five_points, five_from_webmorph189, read_landmark_file
from .layouts import LAYOUTS, DatasetScan, PairRecord, detect_layout, expression_from_name, scan_dataset
from .split import SPLITS, Split, split_of

__all__ = [
    "LAYOUTS", "SPLITS", "CropGeometry", "DataSummary", "DatasetScan", "PairRecord", "PairSet", "PairedFaces",
    "Split", "build_pairs", "cached_pairs", "crop_pair", "detect_layout", "expression_from_name",
    "find_five_points", "five_from_webmorph189", "load_cache", "load_datasets", "load_rgb", "read_landmark_file",
    "scan_dataset", "split_of",
]
