"""Seeded random parameters for one synthetic identity: shape, skin, eyes, lights, camera, background.

Identity ``i`` of seed ``s`` draws from ``numpy.random.default_rng([s, i])`` only (varied lip colours from
``default_rng([s, i, 1])``), so its parameters do not depend on how many identities are rendered, in which order,
or by which worker.
Colours are linear RGB in [0, 1] unless named ``*_srgb``. Angles are degrees.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .recipes import RecipeTable

SKIN_TONES_SRGB = np.array([
    # very light ... very dark diffuse skin colours (sRGB 0-1), spaced like the Monk skin tone scale
    [0.90, 0.76, 0.67], [0.87, 0.71, 0.60], [0.82, 0.64, 0.52], [0.76, 0.57, 0.44], [0.68, 0.49, 0.36],
    [0.58, 0.40, 0.29], [0.47, 0.32, 0.22], [0.38, 0.25, 0.17], [0.29, 0.19, 0.13], [0.20, 0.13, 0.09],
])

EYE_COLOURS_SRGB = {
    "dark_brown": [0.20, 0.11, 0.05], "brown": [0.36, 0.20, 0.08], "hazel": [0.45, 0.36, 0.16],
    "green": [0.30, 0.42, 0.22], "blue": [0.30, 0.45, 0.62], "grey": [0.48, 0.52, 0.55],
}

HAIR_COLOURS_SRGB = {
    "black": [0.05, 0.04, 0.035], "dark_brown": [0.15, 0.09, 0.06], "brown": [0.30, 0.19, 0.11],
    "auburn": [0.40, 0.17, 0.08], "blond": [0.62, 0.50, 0.32], "grey": [0.50, 0.49, 0.47],
}

BACKGROUND_KINDS = ("plain", "gradient", "noise")
LIPS = ("fixed", "varied")  # lip colours: one tint family, or `sample_lip_tint`'s range


def srgb_to_linear(c: np.ndarray | list[float]) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def kelvin_to_rgb(kelvin: float) -> list[float]:
    """Black-body colour (linear RGB, max channel 1) for 1000-40000 K (Tanner Helland's fit)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    srgb = np.clip(np.array([r, g, b]) / 255.0, 0, 1)
    lin = srgb_to_linear(srgb)
    return [float(x) for x in lin / lin.max()]


def _lin(c: np.ndarray | list[float]) -> list[float]:
    return [float(x) for x in srgb_to_linear(np.clip(c, 0, 1))]


@dataclass(frozen=True)
class Skin:
    tone: float                 # 0 = lightest, 1 = darkest
    albedo: list[float]         # linear RGB
    redness: float              # extra red in cheeks, nose, ears
    mottle: float               # strength of low-frequency blotches
    freckles: float             # strength of small dark spots
    pores: float                # bump strength
    roughness: float
    lip_tint: list[float]       # linear RGB multiplier of the albedo on the lips
    brow_density: float
    brow_thickness: float
    hair_colour: list[float]    # brows, lashes, scalp stubble (linear RGB)
    hair_name: str
    scalp_hair: float           # 0 = bald skin, 1 = dark buzz cut
    noise_seed: float           # offsets procedural textures


@dataclass(frozen=True)
class Eyes:
    iris_colour: list[float]    # linear RGB
    iris_name: str
    iris_radius: float          # sin(half angle) of the iris disc on the eye shell
    pupil_radius: float
    sclera: list[float]         # linear RGB
    lashes: float               # 0 = none, 1 = dense/dark


@dataclass(frozen=True)
class Light:
    yaw: float
    elevation: float
    power: float                # watts
    size: float                 # metres
    kelvin: float
    colour: list[float]


@dataclass(frozen=True)
class Lighting:
    key: Light
    fill: Light
    rim: Light
    ambient: float              # world strength
    exposure: float             # stops


@dataclass(frozen=True)
class Camera:
    yaw: float
    pitch: float
    roll: float
    focal_mm: float
    fill: float                 # fraction of the frame height the face's landmark box spans
    shift_x: float              # offsets of the face centre, fraction of the frame
    shift_y: float


@dataclass(frozen=True)
class Background:
    kind: str
    colour_a: list[float]       # sRGB
    colour_b: list[float]       # sRGB
    angle: float
    noise_scale: float


@dataclass(frozen=True)
class IdentityParams:
    name: str
    index: int
    seed: int
    identity_weights: list[float]
    au_scale: dict[str, float]  # per-identity multiplier of each AU strength (style of expressing)
    gaze: dict[str, float]      # eyeLook* blendshapes, the same for every expression of the identity
    skin: Skin
    eyes: Eyes
    lighting: Lighting
    camera: Camera
    background: Background
    render_seed: int = field(default=0)

    def to_dict(self) -> dict:
        return asdict(self)


def identity_name(index: int) -> str:
    return f"id{index:05d}"


def _pick(rng: np.random.Generator, names: list[str], probs: list[float]) -> str:
    p = np.asarray(probs, np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_lip_tint(rng: np.random.Generator, tone: float) -> list[float]:
    """Linear RGB multiplier of the skin's albedo on the lips: darker and redder than the skin by varying amounts,
    darker still on darker skin, and now and then lipstick: real lips span that range, one tint family does not."""
    if rng.uniform() < 0.15:  # lipstick: red, pink or berry
        red = rng.uniform(0.7, 1.1)
        green = red * rng.uniform(0.15, 0.45)
        return [float(red), float(green), float(green * rng.uniform(0.9, 1.6))]
    light = rng.uniform(0.55, 1.0) - 0.2 * tone * rng.uniform()
    green = rng.uniform(0.45, 0.8)
    return [float(x) for x in light * np.array([1.0, green, green * rng.uniform(0.95, 1.3)])]


def sample_skin(rng: np.random.Generator, lip_rng: np.random.Generator | None = None) -> Skin:
    """``lip_rng``: varied lip colours (`sample_lip_tint`) drawn from it; None: one pinkish tint, a little lighter
    or darker."""
    tone = float(rng.uniform(0, 1))
    pos = tone * (len(SKIN_TONES_SRGB) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(SKIN_TONES_SRGB) - 1)
    srgb = SKIN_TONES_SRGB[lo] * (1 - (pos - lo)) + SKIN_TONES_SRGB[hi] * (pos - lo)
    hue = rng.normal(0, 0.025, 3) + np.array([0.01, 0.0, -0.01]) * rng.normal(0, 1)
    # renders look lighter than the swatch (SSS, speculars): darken a little
    srgb = srgb * (1 + hue)
    srgb = 0.12 * srgb.mean() + 0.88 * srgb  # the shader's subsurface scattering saturates; compensate a little
    albedo = _lin(srgb)
    dark_hair = tone > 0.45 or rng.uniform() < 0.55
    hair_names = list(HAIR_COLOURS_SRGB)
    hair = _pick(rng, hair_names, [6 + 6 * tone, 4, 1, 0.1, 0.1, 0.4] if dark_hair else [1, 2, 2, 1, 2, 0.7])
    freckles = float(rng.uniform(0, 1) ** 3 * (1 - tone) * 0.8)
    redness, mottle = float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.05, 0.25))
    pores, roughness = float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.5, 0.65))
    fixed_tint = np.array([0.85, 0.55, 0.58]) * rng.uniform(0.85, 1.05)  # drawn either way: what follows is the same
    return Skin(
        tone=tone,
        albedo=albedo,
        redness=redness,
        mottle=mottle,
        freckles=freckles,
        pores=pores,
        roughness=roughness,
        lip_tint=[float(x) for x in fixed_tint] if lip_rng is None else sample_lip_tint(lip_rng, tone),
        brow_density=float(rng.uniform(0.75, 1.0)),
        brow_thickness=float(rng.uniform(0.8, 1.25)),
        hair_colour=_lin(np.array(HAIR_COLOURS_SRGB[hair]) * rng.uniform(0.85, 1.1)),
        hair_name=hair,
        scalp_hair=float(rng.choice([0.0, rng.uniform(0.6, 1.0)], p=[0.3, 0.7])),
        noise_seed=float(rng.uniform(0, 1000)),
    )


def sample_eyes(rng: np.random.Generator, skin_tone: float) -> Eyes:
    names = list(EYE_COLOURS_SRGB)
    light = 1 - skin_tone
    probs = [1 + 3 * skin_tone, 2, 0.5 + light, 0.2 + light, 0.1 + 1.6 * light ** 2, 0.05 + 0.5 * light ** 2]
    name = _pick(rng, names, probs)
    return Eyes(
        iris_colour=_lin(np.array(EYE_COLOURS_SRGB[name]) * rng.uniform(0.8, 1.15, 3)),
        iris_name=name,
        iris_radius=float(rng.uniform(0.40, 0.45)),
        pupil_radius=float(rng.uniform(0.13, 0.19)),
        sclera=_lin(np.array([0.88, 0.85, 0.82]) * rng.uniform(0.9, 1.0)),
        lashes=float(rng.uniform(0.5, 1.0)),
    )


def sample_lighting(rng: np.random.Generator) -> Lighting:
    side = float(rng.choice([-1.0, 1.0]))
    k_kelvin = float(rng.uniform(3500, 7000))
    key = Light(yaw=side * float(rng.uniform(15, 55)), elevation=float(rng.uniform(10, 45)),
                power=float(rng.uniform(22, 38)), size=float(rng.uniform(0.4, 1.2)),
                kelvin=k_kelvin, colour=kelvin_to_rgb(k_kelvin))
    f_kelvin = float(np.clip(k_kelvin + rng.normal(0, 1200), 2800, 9000))
    fill = Light(yaw=-side * float(rng.uniform(30, 70)), elevation=float(rng.uniform(-5, 25)),
                 power=key.power * float(rng.uniform(0.2, 0.55)), size=float(rng.uniform(0.8, 1.6)),
                 kelvin=f_kelvin, colour=kelvin_to_rgb(f_kelvin))
    r_kelvin = float(rng.uniform(4000, 9000))
    rim = Light(yaw=float(rng.uniform(130, 230)), elevation=float(rng.uniform(20, 60)),
                power=key.power * float(rng.uniform(0.0, 0.8)), size=float(rng.uniform(0.3, 0.8)),
                kelvin=r_kelvin, colour=kelvin_to_rgb(r_kelvin))
    return Lighting(key=key, fill=fill, rim=rim, ambient=float(rng.uniform(0.15, 0.4)),
                    exposure=float(rng.normal(0, 0.15)))


def sample_camera(rng: np.random.Generator) -> Camera:
    return Camera(
        yaw=float(rng.uniform(-12, 12)), pitch=float(rng.uniform(-8, 8)), roll=float(rng.uniform(-5, 5)),
        focal_mm=float(rng.uniform(50, 110)), fill=float(rng.uniform(0.55, 0.68)),
        shift_x=float(rng.uniform(-0.03, 0.03)), shift_y=float(rng.uniform(-0.03, 0.03)),
    )


def sample_background(rng: np.random.Generator) -> Background:
    kind = str(rng.choice(BACKGROUND_KINDS))
    a = rng.uniform(0.05, 0.95, 3) * rng.uniform(0.4, 1.0)
    b = np.clip(a + rng.normal(0, 0.25, 3), 0, 1)
    return Background(kind=kind, colour_a=[float(x) for x in a], colour_b=[float(x) for x in b],
                      angle=float(rng.uniform(0, 360)), noise_scale=float(rng.uniform(2, 30)))


def sample_gaze(rng: np.random.Generator) -> dict[str, float]:
    """A small gaze offset: +h looks to the subject's left, +v looks up."""
    h, v = float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.25))
    gaze: dict[str, float] = {}
    if h > 0:
        gaze.update(eyeLookOut_L=h, eyeLookIn_R=h)
    else:
        gaze.update(eyeLookIn_L=-h, eyeLookOut_R=-h)
    if v > 0:
        gaze.update(eyeLookUp_L=v, eyeLookUp_R=v)
    else:
        gaze.update(eyeLookDown_L=-v, eyeLookDown_R=-v)
    return gaze


def turned(camera: Camera, rng: np.random.Generator, yaw: tuple[float, float], pitch: float) -> Camera:
    """``camera`` turned to a yaw of ``yaw[0]``..``yaw[1]`` degrees to either side and a pitch within +-``pitch``."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    return replace(camera, yaw=side * float(rng.uniform(*yaw)), pitch=float(rng.uniform(-pitch, pitch)))


def sample_identity(seed: int, index: int, n_modes: int, recipes: RecipeTable, lips: str = "fixed",
                    yaw: tuple[float, float] | None = None, pitch: float = 8.0) -> IdentityParams:
    """All random parameters of identity ``index`` under ``seed``; ``lips``: one of LIPS. The lips change nothing else.
    ``yaw``: turn the head (the camera about it) by that many degrees to either side, pitch within +-``pitch``, from a
    stream of its own: everything else is the same identity as without it."""
    if lips not in LIPS:
        raise ValueError(f"lips must be one of {LIPS}, got {lips!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    weights = np.clip(rng.standard_normal(n_modes), -2.5, 2.5) * 0.9
    skin = sample_skin(rng, np.random.default_rng([int(seed), int(index), 1]) if lips == "varied" else None)
    au_scale = {au: float(rng.uniform(0.8, 1.15)) for au in sorted(recipes.au_to_blendshapes)}
    params = IdentityParams(
        name=identity_name(index), index=int(index), seed=int(seed),
        identity_weights=[float(w) for w in weights], au_scale=au_scale, gaze=sample_gaze(rng), skin=skin,
        eyes=sample_eyes(rng, skin.tone), lighting=sample_lighting(rng), camera=sample_camera(rng),
        background=sample_background(rng), render_seed=int(rng.integers(0, 2**31 - 1)),
    )
    if yaw is None:
        return params
    return replace(params, camera=turned(params.camera, np.random.default_rng([int(seed), int(index), 2]), yaw, pitch))
