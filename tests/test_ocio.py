"""Frames in an OpenColorIO colour space (`--colorspace`, $OCIO): the network sees them in sRGB and the edit goes back
into the frame's own space, so an ACEScg EXR gets the edit an sRGB frame gets, in the right colours."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import synthetic_frame

from reggan_plugin.config import ColourConfig
from reggan_plugin.errors import InputError, UsageError
from reggan_plugin.imageio import (
    ImageData,
    compose_output,
    read_image,
    srgb_decode,
    srgb_encode,
    to_network_rgb,
    write_image,
)
from reggan_plugin.imageio.ocio import FrameColours, frame_colours

ocio = pytest.importorskip("PyOpenColorIO")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "frames" / "shot_0001.png"
BUILTIN = "ocio://cg-config-latest"


def _convert(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    """rgb (..., 3) from one space of the built-in config to another (OCIO itself: the test's reference)."""
    processor = ocio.Config.CreateFromFile(BUILTIN).getProcessor(source, target).getDefaultCPUProcessor()
    flat = np.array(rgb, np.float32).reshape(-1, 3)
    processor.applyRGB(flat)
    return flat.reshape(np.shape(rgb))


def _acescg_exr(png: Path, exr: Path) -> ImageData:
    """An 8-bit sRGB frame as an ACEScg scene-linear EXR, alpha kept."""
    source = read_image(png).pixels
    linear = srgb_decode(source[..., :3].astype(np.float32) / 255)
    aces = _convert(linear, "lin_rec709", "ACEScg")
    pixels = np.concatenate([aces, source[..., 3:].astype(np.float32) / 255], axis=2)
    image = ImageData(np.ascontiguousarray(pixels, np.float32), None, "exr", True, {})
    write_image(exr, image)
    return image


def _srgb8(aces: np.ndarray) -> np.ndarray:
    """ACEScg float pixels -> sRGB levels (float, rounded), as a viewer in sRGB shows them."""
    return np.clip(np.rint(srgb_encode(_convert(aces[..., :3], "ACEScg", "lin_rec709")) * 255), 0, 255)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if k != "OCIO"}
    run_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "reggan_plugin.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=run_env, cwd=ROOT)


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """srgb/shot_0001.png, aces/shot_0001.exr (the same frame in ACEScg) and faces.json keyed by the stem."""
    root = tmp_path_factory.mktemp("shot")
    (root / "srgb").mkdir()
    (root / "aces").mkdir()
    shutil.copyfile(SAMPLE, root / "srgb" / SAMPLE.name)
    _acescg_exr(SAMPLE, root / "aces" / "shot_0001.exr")
    given = json.loads((ROOT / "samples" / "faces.json").read_text())
    given["frames"] = {"shot_0001": given["frames"][SAMPLE.name]}
    (root / "faces.json").write_text(json.dumps(given))
    return root


def _render(shot: Path, folder: str, out: str, *extra: str, env: dict[str, str] | None = None) -> Path:
    proc = cli("render", "--frames", shot / folder, "--out", shot / out, "--faces", shot / "faces.json",
               "--backend", "cpu", *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    return shot / out


@pytest.mark.slow  # an end-to-end render; the fast tier keeps the unit checks of the same behaviour
def test_an_acescg_exr_gets_the_edit_of_the_srgb_frame(shot):
    """The acceptance test: the same frame as 8-bit sRGB and as ACEScg EXR, rendered with the bundled model; the EXR's
    output converted to sRGB is the sRGB frame's output within a level. Read as linear sRGB (no --colorspace) the
    EXR's edit comes back in the wrong colours."""
    source = read_image(shot / "srgb" / SAMPLE.name).pixels[..., :3].astype(np.float64)
    reference = read_image(_render(shot, "srgb", "out_srgb") / SAMPLE.name).pixels[..., :3].astype(np.float64)
    managed = read_image(_render(shot, "aces", "out_aces", "--colorspace", "ACEScg") / "shot_0001.exr").pixels
    unmanaged = read_image(_render(shot, "aces", "out_raw") / "shot_0001.exr").pixels
    rows, cols = np.nonzero(np.abs(reference - source).max(axis=2))
    face = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))  # where the sRGB edit changed
    good, bad = _srgb8(managed)[face], _srgb8(unmanaged)[face]
    edit = float(np.abs(reference - source)[face].mean())
    print(f"face region {face}: copy {_psnr(source[face], reference[face]):.1f} dB; ACEScg --colorspace "
          f"{_psnr(good, reference[face]):.1f} dB, max {np.abs(good - reference[face]).max():.0f} levels, mean error "
          f"{np.abs(good - reference[face]).mean() / edit:.2%} of the edit; without --colorspace "
          f"{_psnr(bad, reference[face]):.1f} dB, max {np.abs(bad - reference[face]).max():.0f} levels, mean error "
          f"{np.abs(bad - reference[face]).mean() / edit:.1%} of the edit")
    assert _psnr(good, reference[face]) > 60 and np.abs(good - reference[face]).max() <= 2
    assert np.abs(good - reference[face]).mean() < 0.01 * edit
    # measurably wrong: the edit's colours are off (bundled: 23 levels; the head's antialiased edge keeps its own
    # colour, so the worst pixel lies inside the face), on average three times what the managed path may miss by
    assert np.abs(bad - reference[face]).max() >= 8
    assert np.abs(bad - reference[face]).mean() > 0.03 * edit  # bundled: 3.6%


def test_only_the_face_changes_in_the_frames_own_space(shot):
    """Where the paste-back mask is 0 the ACEScg EXR's bits are the input's; alpha is untouched everywhere. The
    renderer is run in this process to read its mask; its frame is the CLI's, byte for byte."""
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.faces import load_faces_json
    from reggan_plugin.faces.locate import FaceLocator
    from reggan_plugin.renderer import ExpressionRenderer

    frame = shot / "aces" / "shot_0001.exr"
    image = frame_colours(ColourConfig("ACEScg")).attach(read_image(frame))
    faces = FaceLocator(given=load_faces_json(shot / "faces.json")).fixed_faces(frame.name, image.pixels.shape)
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu"))
    prepared = renderer.prepare_image(image, faces or [])
    crops = renderer.forward_images([prepared], EditConfig())[0]
    _, mask = renderer.paste(prepared.region_rgb(), prepared.matrices, prepared.crops, crops.faces,
                             interior=crops.interior)
    edited = renderer.finish_image(prepared, crops).pixels
    cli_out = read_image(_render(shot, "aces", "out_bits", "--colorspace", "ACEScg") / frame.name).pixels
    assert np.array_equal(edited, cli_out)
    full_mask = np.zeros(image.pixels.shape[:2], bool)
    full_mask[prepared.roi] = mask > 0
    changed = np.any(edited != image.pixels, axis=2)
    assert changed.sum() > 1000 and not changed[~full_mask].any()
    assert np.array_equal(edited[..., 3], image.pixels[..., 3])


@pytest.mark.parametrize("space", ["ACEScg", "Linear Rec.2020", "sRGB Encoded P3-D65"])
def test_write_edit_changes_only_masked_pixels_and_carries_the_change_into_the_space(space):
    """In the frame's own space: mask 0 and an edit that changes nothing keep every bit; an edit of the network
    colour comes back as the same colour (the frame converted to sRGB shows the edited picture)."""
    rng = np.random.default_rng(3)
    colours = frame_colours(ColourConfig(space))
    linear709 = rng.uniform(0.01, 0.9, (40, 50, 3)).astype(np.float32)
    stored = _convert(linear709, "lin_rec709", space)
    alpha = rng.uniform(0, 1, (40, 50, 1)).astype(np.float32)
    image = colours.attach(ImageData(np.concatenate([stored, alpha], axis=2), None, "exr", True, {}))
    assert image.colour is not None and image.colour.name == space
    network = to_network_rgb(image)
    np.testing.assert_allclose(network, np.clip(srgb_encode(linear709), 0, 1), atol=1e-4)  # OCIO's fast curves
    mask = np.zeros((40, 50), np.float32)
    mask[10:30, 5:45] = 1.0
    assert np.array_equal(compose_output(image, network, mask).pixels, image.pixels)  # no change: exact bits
    wanted = network.copy()
    wanted[10:30, 5:45] = np.clip(wanted[10:30, 5:45] * [1.1, 0.9, 0.8] + 0.02, 0, 1)
    out = compose_output(image, wanted, mask)
    assert np.array_equal(out.pixels[mask == 0], image.pixels[mask == 0]) and np.array_equal(out.pixels[..., 3], alpha[..., 0])
    np.testing.assert_allclose(to_network_rgb(out), wanted, atol=2e-4)


def test_8bit_frames_in_a_colour_space_are_edited_in_it():
    """An 8-bit texture stored as sRGB-encoded P3: the edit lands in P3 levels; untouched pixels keep their bytes."""
    colours = frame_colours(ColourConfig("sRGB Encoded P3-D65"))
    pixels = synthetic_frame(48, 64, 3, np.uint8, seed=2)
    image = colours.attach(ImageData(pixels, None, "png", False, {}))
    network = to_network_rgb(image)
    expect = srgb_encode(_convert(pixels / np.float32(255), "sRGB Encoded P3-D65", "lin_rec709"))
    np.testing.assert_allclose(network, np.clip(expect, 0, 1), atol=1e-4)
    mask = np.zeros((48, 64), np.float32)
    mask[:, :32] = 1
    wanted = network.copy()
    wanted[:, :32] = np.clip(wanted[:, :32] + [0.1, -0.05, 0.0], 0, 1)
    out = compose_output(image, wanted, mask).pixels
    assert np.array_equal(out[:, 32:], pixels[:, 32:]) and np.any(out[:, :32] != pixels[:, :32])
    got = to_network_rgb(colours.attach(ImageData(out, None, "png", False, {})))[:, :32]
    in_gamut = np.all((expect[:, :32] >= 0) & (expect[:, :32] <= 1), axis=2)  # P3 colours sRGB can show: the rest
    assert in_gamut.mean() > 0.5  # keeps its excess beyond sRGB's range plus the edit, by design
    assert np.abs(got - wanted[:, :32])[in_gamut].max() < 2.5 / 255  # the edited colour, within the bytes' rounding


def test_the_networks_own_space_attaches_nothing():
    """Linear Rec.709 floats and sRGB bytes take the unmanaged path, bit for bit as without OCIO."""
    colours = frame_colours(ColourConfig("Linear Rec.709 (sRGB)"))
    assert colours.float_frames is None and colours.stored_frames is not None
    assert frame_colours(ColourConfig("srgb_tx")).stored_frames is None
    assert frame_colours(ColourConfig()) == FrameColours()


@pytest.mark.slow  # three renders through the CLI
def test_the_ocio_variable_reads_float_frames_in_its_scene_linear_role(shot):
    """$OCIO's scene_linear role (ACEScg in the CG config) is the default for EXR frames: the same bytes as
    --colorspace ACEScg; 8-bit frames stay sRGB: the same bytes as without $OCIO."""
    env = {"OCIO": BUILTIN}
    by_role = _render(shot, "aces", "role_aces", env=env) / "shot_0001.exr"
    named = _render(shot, "aces", "named_aces", "--colorspace", "ACEScg") / "shot_0001.exr"
    assert by_role.read_bytes() == named.read_bytes()
    png_env = _render(shot, "srgb", "role_srgb", env=env) / SAMPLE.name
    png = _render(shot, "srgb", "plain_srgb") / SAMPLE.name
    assert png_env.read_bytes() == png.read_bytes()


def test_texture_takes_the_colour_space_too(shot, tmp_path):
    out = tmp_path / "face.exr"
    proc = cli("texture", shot / "aces" / "shot_0001.exr", "--out", out, "--colorspace", "ACEScg", "--backend", "cpu",
               "--region", "60,60,140,150")
    assert proc.returncode == 0, proc.stderr
    plain = tmp_path / "plain.exr"
    assert cli("texture", shot / "aces" / "shot_0001.exr", "--out", plain, "--backend", "cpu",
               "--region", "60,60,140,150").returncode == 0
    assert out.read_bytes() != plain.read_bytes()


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_colour_spaces_and_configs_are_one_line_errors(shot, tmp_path):
    broken = tmp_path / "broken.ocio"
    broken.write_text("ocio_profile_version: 2\nroles: [not a mapping\n")
    cases = [
        (("--colorspace", "ACEScgg"), {}, "unknown colour space 'ACEScgg' in the built-in OCIO config"),
        (("--colorspace", "Raw"), {}, "'Raw'"),
        ((), {"OCIO": str(broken)}, f"{broken}: not a usable OCIO config"),
        (("--colorspace", "ACEScg"), {"OCIO": str(tmp_path / "missing.ocio")}, "missing.ocio"),
    ]
    for args, env, words in cases:
        proc = cli("render", "--frames", shot / "aces", "--out", tmp_path / "out", "--backend", "cpu", *args, env=env)
        assert proc.returncode == 2, proc.stderr
        assert words in _error_line(proc)
        assert "backend:" not in proc.stderr  # said before the model loads
    texture = cli("texture", SAMPLE, "--out", tmp_path / "t.png", "--colorspace", "nope")
    assert texture.returncode == 2 and "'nope'" in _error_line(texture)


def test_library_errors_are_typed(tmp_path):
    with pytest.raises(UsageError, match="unknown colour space 'x'"):
        frame_colours(ColourConfig("x"))
    with pytest.raises(InputError, match="not a usable OCIO config"):
        frame_colours(ColourConfig("ACEScg", str(tmp_path / "none.ocio")))
