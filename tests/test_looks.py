"""Render looks: named, recorded in the manifest, one per folder, lights drawn per identity."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reggan_plugin.errors import UsageError
from training.synth.looks import HELD_OUT_LOOKS, LOOKS, TRAIN_LOOKS, check_look, look_lighting
from training.synth.render import merge_manifest
from training.synth.variation import sample_lighting


def test_training_and_held_out_looks_do_not_overlap() -> None:
    assert set(TRAIN_LOOKS) | set(HELD_OUT_LOOKS) == set(LOOKS)
    assert not set(TRAIN_LOOKS) & set(HELD_OUT_LOOKS)
    assert check_look("toon") == "toon"
    with pytest.raises(ValueError, match="unknown look"):
        check_look("sepia")


def test_a_folder_keeps_its_look(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    old = {"settings": {"seed": 7, "size": 96, "samples": 6, "denoise": True, "face_model_sha256": "x", "intensities": [1.0]},
           "identities": {}, "expressions": ["neutral"], "recipes": {}}
    path.write_text(json.dumps(old))  # a folder rendered before looks and lips existed: studio, fixed lips
    studio = {**old, "settings": {**old["settings"], "look": "studio", "lips": "fixed", "intensities": [1.0]}, "versions": {}}
    assert merge_manifest(path, studio)["settings"].get("look", "studio") == "studio"
    toon = {**studio, "settings": {**studio["settings"], "look": "toon"}}
    with pytest.raises(UsageError, match="look"):
        merge_manifest(path, toon)
    varied = {**studio, "settings": {**studio["settings"], "lips": "varied"}}  # and its lip colours
    with pytest.raises(UsageError, match="lips"):
        merge_manifest(path, varied)


def test_only_the_coloured_look_changes_lights_and_the_same_identity_gets_the_same_ones() -> None:
    import numpy as np

    lights = sample_lighting(np.random.default_rng(3))
    assert look_lighting(lights, "matte", 5, 7) is lights
    coloured = look_lighting(lights, "coloured", 5, 7)
    assert coloured == look_lighting(lights, "coloured", 5, 7)
    assert coloured.key.colour != lights.key.colour and coloured.ambient < lights.ambient
    assert max(coloured.rim.colour) - min(coloured.rim.colour) > 0.3  # saturated
