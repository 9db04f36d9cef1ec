"""ARKit channels: their names in any case, mixes that add past 1, the channel model chosen for them, and the bundled
channel model's motion on the side a channel names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.artifact import ModelArtifact, channels_model_path, model_for, parse_expression
from reggan_plugin.config import EditConfig
from reggan_plugin.errors import UsageError
from reggan_plugin.expressions import arkit_name, is_channel_mix, key_weights


def _artifact(expressions: tuple[str, ...]) -> ModelArtifact:
    return ModelArtifact(path=Path("m.onnx"), sha256="0", input_size=64, expressions=expressions, has_intensity=True,
                         color_space="srgb", value_range=(-1.0, 1.0), crop_template=None)


def test_channel_names_are_read_in_any_case_and_nothing_else_is_a_channel() -> None:
    assert arkit_name("MouthSmileLeft") == "mouthSmileLeft" and arkit_name(" jawopen ") == "jawOpen"
    assert arkit_name("happy") is None and arkit_name("mouthSmile_L") is None
    assert is_channel_mix({"jawOpen": 1.0, "BrowInnerUp": 0.2}) and not is_channel_mix({"jawOpen": 1, "happy": 0.2})
    assert not is_channel_mix({})


def test_channels_add_past_1_and_neutral_takes_the_rest_below_0() -> None:
    channels = _artifact(("neutral", "jawOpen", "mouthSmileLeft", "browDownRight"))
    weights = channels.expression_weights("jawOpen=0.5,MouthSmileLeft=1,browDownRight=0.3")
    assert np.allclose(weights, [-0.8, 0.5, 1.0, 0.3])
    with pytest.raises(UsageError, match="each weight is in"):
        channels.expression_weights("jawOpen=1.5")
    with pytest.raises(UsageError, match=r"sum to 1\.3"):  # the six expressions still blend, never add
        parse_expression("happy=0.8,sad=0.5")
    faces = _artifact(("neutral", "happy", "sad"))
    with pytest.raises(UsageError, match="ARKit channels: the channel model"):
        faces.expression_weights("jawOpen=0.5")
    EditConfig({"jawOpen": 0.7, "mouthSmileLeft": 0.9})  # a channel mapping past 1 is a valid edit


def test_a_channel_with_a_key_is_interpolated_between_its_keys() -> None:
    """eyeBlinkLeft keyed at 0.5: 0.3 is 0.6 of the key, 0.75 half the key and half the full blink; a channel without
    keys is its weight; neutral takes what the keys leave; a key is no name to ask for."""
    assert key_weights(0.3, [0.5]) == pytest.approx({0.5: 0.6})
    assert key_weights(0.75, [0.5]) == pytest.approx({0.5: 0.5, 1.0: 0.5})
    assert key_weights(1.0, [0.5]) == {1.0: 1.0} and key_weights(0.0, [0.5]) == {}
    keyed = _artifact(("neutral", "eyeBlinkLeft", "jawOpen", "eyeBlinkLeft@0.5"))
    assert keyed.names == ("neutral", "eyeBlinkLeft", "jawOpen") and keyed.keys == {"eyeBlinkLeft": {0.5: 3, 1.0: 1}}
    assert np.allclose(keyed.expression_weights("eyeBlinkLeft=0.3,jawOpen=0.4"), [0.0, 0.0, 0.4, 0.6])
    assert np.allclose(keyed.expression_weights("eyeBlinkLeft=0.75"), [0.0, 0.5, 0.0, 0.5])
    for asked in ("eyeBlinkLeft@0.5=1", "eyeBlinkLeft@x=1"):  # keys are the model's own, and no names
        with pytest.raises(UsageError, match="unknown expression"):
            keyed.expression_weights(asked)
    assert not is_channel_mix({"jawOpen@x": 0.5}) and model_for("jawOpen@x=0.5", None) is None


def test_the_channel_model_is_the_default_for_channels_alone() -> None:
    assert model_for("jawOpen=0.5,mouthSmileLeft=1", None) == channels_model_path()
    assert model_for("happy", None) is None and model_for("happy=0.5,sad=0.5", None) is None
    assert model_for("jawOpen", Path("mine.onnx")) == Path("mine.onnx")


@pytest.mark.parametrize(("channel", "named", "other", "upward"), [
    ("mouthSmileLeft", 4, 3, True), ("mouthSmileRight", 3, 4, True),  # the person's left is the picture's right
    ("eyeBlinkLeft", 1, 0, False), ("eyeBlinkRight", 0, 1, False),
])
def test_a_channel_moves_the_side_it_names_and_not_the_other(channel: str, named: int, other: int, upward: bool
                                                             ) -> None:
    """The bundled channel model's motion on the demo's face: around the named side's mouth corner or eye it moves the
    face (up for a smile's corner, down for a lid), at least three times as far as around the other side's."""
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces.faces_json import load_faces_json
    from reggan_plugin.geometry.align import CANONICAL_5PT
    from reggan_plugin.geometry.resample import warp_to_crop
    from reggan_plugin.imageio import read_image
    from reggan_plugin.renderer import ExpressionRenderer

    samples = Path(__file__).resolve().parents[1] / "samples"
    renderer = ExpressionRenderer(InferenceConfig(model=channels_model_path(), backend="cpu"))
    image = read_image(samples / "frames" / "shot_0001.png")
    face = load_faces_json(samples / "faces.json").faces_for("shot_0001.png")[0]
    m = renderer.crop_matrix(face, image.pixels.shape)
    crop = warp_to_crop(np.asarray(image.pixels[..., :3], np.float32) / 255, m, renderer.size)[None]
    motion = renderer.forward(crop, EditConfig({channel: 1.0}))[0, ..., 3:]
    size = renderer.size
    points = CANONICAL_5PT * size

    def around(index: int) -> np.ndarray:
        x, y = np.rint(points[index]).astype(int)
        r = max(2, size // 16)
        return motion[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 2)

    near, far = around(named), around(other)
    assert np.abs(near).mean() > 3 * np.abs(far).mean(), (np.abs(near).mean(), np.abs(far).mean())
    assert (near[:, 1].mean() > 0) == upward  # motion is where a pixel draws from: a raised corner draws from below


def test_the_bundled_channel_model_is_its_recipes() -> None:
    """The shipped channel model was built by recipes/channels.toml as it is in the repository (its text and sha256
    are in the model's metadata): one recipe, one command."""
    import hashlib
    import json

    from reggan_plugin.artifact import load_artifact

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "channels.toml"
    stamped = json.loads(load_artifact(channels_model_path()).metadata["reggan.recipe"])
    assert stamped["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest() and stamped["text"] == recipe.read_text()


def test_a_renders_blendshapes_read_back_as_its_channel_mix() -> None:
    """The evaluation gives the edit the mix a render was made with: its face-model shapes less the neutral's gaze, by
    the channel table (cheekPuff is both cheeks' shape), each at most 1."""
    from training.evaluate.channels import channel_weights

    neutral = {"eyeLookIn_L": 0.1, "eyeLookOut_R": 0.1}
    shapes = {**neutral, "mouthSmile_L": 0.6, "cheekPuff_L": 0.4, "cheekPuff_R": 0.4, "jawOpen": 1.1}
    assert channel_weights(shapes, neutral) == pytest.approx({"mouthSmileLeft": 0.6, "cheekPuff": 0.4, "jawOpen": 1.0})
