"""Training configuration: one frozen dataclass per concern, built at the entry point (cli.py).

`TrainConfig` holds the solver's settings (loss weights, optimiser, schedule, data split);
`AugmentConfig` the augmentation applied identically to both images of a pair. Click options in
`training/cli.py` take their defaults from these fields, so a default is written once.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Literal

from reggan_plugin.faces.turn import valid_keys, valid_tilt_keys
from reggan_plugin.tuning import LOWER_FACE

from .config import base_expression, strict_from_dict

# the ridge settings a group of expressions may have of its own (`TrainConfig.stage1_by_expression`); the radius is
# one for the whole model
GROUP_RIDGE_SETTINGS = ("ridge_lambdas", "ridge_shared_colour", "ridge_colour_tie", "ridge_toward_identity")

ModelPreset = Literal["tiny", "default"]
Device = Literal["cpu", "cuda"]


def _parse(kind: str, text: str, name: str):
    """A --set value as its field's type (annotations are strings here: ``from __future__ import annotations``)."""
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind.startswith("tuple[int"):
            return tuple(int(v) for v in text.split(","))
        if kind.startswith("tuple[float"):
            return tuple(float(v) for v in text.split(","))
        if kind.startswith("tuple[str"):
            return tuple(v.strip() for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--set {name}: {text!r} is not a valid {kind}") from None
    raise ValueError(f"--set: {name} cannot be set from the command line")


@dataclass(frozen=True)
class AugmentConfig:
    """Per-pair augmentation. Every draw is shared by the neutral and the target of one pair.

    The refiner is trained on top of a frozen stage 1, so its augmentation should match what stage 1 was fitted
    on (``TrainConfig.stage1_augment``): pairs perturbed more than stage 1 ever saw make stage 1 look worse in
    training than it is at run time, and the refiner then learns to close its mask and copy the input (-1 dB
    against stage 1 after 250 iterations with 4 deg / 5% jitter, flips and noise on a stage 1 fitted on clean
    crops).
    """

    enabled: bool = True
    # geometric jitter: a small similarity applied to both images (crop is cut from a wider cache)
    rotate_deg: float = 1.0  # uniform in [-rotate_deg, rotate_deg]
    scale: float = 0.01  # zoom factor uniform in [1 - scale, 1 + scale]
    translate: float = 0.005  # shift, fraction of the crop, uniform per axis
    flip: bool = False  # horizontal mirror with probability 1/2 (the template is symmetric; faces are not)
    # photometric (values in [0, 1] space)
    brightness: float = 0.10  # add uniform [-b, b]
    contrast: float = 0.20  # scale about the mean by uniform [1 - c, 1 + c]
    saturation: float = 0.25  # mix with grey by uniform [1 - s, 1 + s]
    hue_deg: float = 8.0  # rotate chroma by uniform [-h, h] degrees
    gamma: float = 0.20  # exponent exp(uniform [-g, g])
    exposure: float = 0.0  # stops: linear light scaled by 2 ** uniform [-e, e]
    white_balance: float = 0.0  # red and blue gains uniform [1 - w, 1 + w] against green (linear light)
    noise: float = 0.0  # Gaussian noise sigma uniform [0, noise]
    blur_prob: float = 0.2  # probability of a Gaussian blur ...
    blur_sigma: float = 1.0  # ... with sigma uniform [0.3, blur_sigma] crop pixels
    # the input alone (``augment.degrade_inputs``; for stage 1: ``TrainConfig.stage1_degrade_copies``): what a user's
    # picture carries and the edit must not depend on.
    # The target gets the input's change too, so the pair still shows the clean edit.
    # unsharp masking at a sigma of 1 crop px by an amount uniform [0, input_sharpen]: a photograph's lip line and skin,
    # sharper than any render's, which a map fitted on renders alone answers with colour fringes
    input_sharpen: float = 0.0
    input_noise: float = 0.0  # Gaussian noise sigma uniform [0, input_noise], then the runtime's degrain
    input_jpeg_prob: float = 0.0  # probability of a JPEG round trip ...
    input_jpeg_quality: tuple[int, int] = (40, 90)  # ... at a quality uniform in this range

    def __post_init__(self) -> None:  # a run's JSON gives lists
        object.__setattr__(self, "input_jpeg_quality", tuple(int(v) for v in self.input_jpeg_quality))

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(enabled=False)


STAGE1_AUGMENT = AugmentConfig(
    rotate_deg=3.0, scale=0.04, translate=0.02, brightness=0.05, contrast=0.15, saturation=0.2, hue_deg=6.0,
    gamma=0.2, exposure=1.0, white_balance=0.12, noise=0.06, blur_prob=0.15, blur_sigma=0.8,
)
"""Stage 1's perturbations: the runtime's alignment error from landmarks a detector found (about 4% of the eye
distance, a few degrees), render noise up to 15 levels, exposure +-1 stop and white-balance shifts."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything the solver needs besides the data and the model architecture."""

    iterations: int = 100_000
    # stop after this iteration (0: at `iterations`) with the schedule (warm-up, learning-rate decay) still laid out
    # over `iterations`: a run ended early by its recipe rather than by hand
    stop_at: int = 0
    batch_size: int = 16  # per process
    seed: int = 0
    # Adam as in StarGAN / SARGAN but G at 5e-4 and beta1 0.9: with the warm-up below there is no D to balance at
    # first. The bundled model's exact recipe is in MODEL_CARD.md.
    g_lr: float = 5e-4
    # The refiner's output conv starts at zero and has a 7x7x(conv_dim) fan-in: Adam's first steps move every
    # weight by ~lr at once, so at g_lr 5e-4 one step puts |residual| at ~0.16 (stage 1's error is ~0.01) and
    # the refiner spends its run returning to "add nothing". At 0.01 it overfits a batch 4x below stage 1's
    # squared error in 60 steps.
    head_lr_scale: float = 0.01
    d_lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    lr_decay_start: float = 0.75  # fraction of `iterations` after which both rates fall linearly to 0
    zero_init_output: bool = True  # refiner starts with no warp and a constant paint mask (Refiner.start_as_identity)
    mask_init_logit: float = 6.0  # that mask's logit: -3 starts near the input, +3 near stage 1's output, 6 at it
    # Refiner-only warm-up on the reconstruction terms before D joins (ESRGAN's PSNR-oriented pre-training):
    # a from-scratch refiner under the adversarial loss barely moves off stage 1 in a CPU-sized budget (measured on
    # this model's data: head weights moved 6e-4 in 750 G steps), and a warm-up step costs about a third of an adversarial one.
    warmup_iterations: int = 4000
    n_critic: int = 2  # D updates per G update (WGAN-GP's paper uses 5; paired L1 makes 2 enough)
    # loss weights: L_D = -D(t) + D(y) + cls * CE_real + gp * GP
    #               L_G = -D(y) + cls * CE_fake + l1 * |y - t| (3 scales) + grad * |grad y - grad t|
    #                     + l2 * (y - t)^2 + sparse * |m_out (y - x)| + ident * |G(x, neutral) - x| + mask * mean(m) + flow_tv * TV(flow)
    lambda_adv: float = 0.01  # weight of -D(y) in L_G (1 in StarGAN; lower keeps the L1 and warp terms in charge)
    lambda_cls: float = 0.05
    lambda_gp: float = 10.0
    lambda_l1: float = 10.0
    # Squared error to the target (full resolution). Why: started at stage 1, the refiner's remaining errors are
    # many tiny ones and a few large ones (mouth, teeth); L1's gradient is only their sign, so the tiny ones
    # drown the large ones, while L2 weighs each by its size (and is what PSNR measures).
    lambda_l2: float = 1000.0
    lambda_sparse: float = 2.0  # change outside the region an expression moves (keeps the person)
    lambda_ident: float = 5.0  # neutral target must give back the input (StarGAN's identity mapping)
    lambda_grad: float = 2.0  # L1 between image gradients of y and t (keeps edges sharp)
    lambda_mask: float = 0.0  # paint only where warping the input's own pixels cannot explain the target
    lambda_flow_tv: float = 5.0  # smooth warps (flow is in grid units: its TV is small)
    # stage 1: closed-form ridge per expression, radius and lambda chosen on the validation split
    ridge_radii: tuple[int, ...] = (1, 3, 5, 7)
    ridge_lambdas: tuple[float, ...] = (0.01, 0.04, 0.2, 1.0, 5.0)
    # shrink each pixel's map toward copying its input instead of toward 0 (LSRF's ridge): for fits on few pairs
    ridge_toward_identity: bool = False
    # one set of neighbourhood weights for the three colour channels (each its own bias): `ridge_solve`
    ridge_shared_colour: bool = False
    # else each colour's weights drawn toward the colours' mean, by this share of the data's own weight: `ridge_solve`
    ridge_colour_tie: float = 0.0
    ridge_max_pairs: int = 600  # per expression, for the selection table (the final fit uses all)
    # ... after a per-expression mean flow (models/stage1.py): a smooth flow on a G x G control grid fitted to
    # the training pairs (0: no flow), the ridge then fitted on the moved inputs; and the listed expressions
    # bounded to an ellipse (cx, cy, rx, ry, fractions of the crop). Happy's lower-face ellipse was chosen on
    # London's 55 training-split people among 4 (+ 8 render-change regions that kept the squint and lost
    # identity). The bundled model's happy is fitted over the whole crop (MODEL_CARD.md, Recipe: the happy fit), closer to the
    # renders' smiles; for photographs its gains bound the edit to the same ellipse at run time (``upper``,
    # reggan_plugin.tuning.LOWER_FACE).
    stage1_flow_grid: int = 16
    stage1_flow_steps: int = 300
    # ... held also to the renders' landmarks (`fit_mean_flow`'s points, this their weight; 0: the pictures alone): the
    # exact motion of 68 points of the face model, where the pictures' L1 finds none (a jaw dropping over plain skin)
    stage1_flow_landmarks: float = 0.0
    stage1_region_expressions: tuple[str, ...] = ("happy",)
    stage1_region_ellipse: tuple[float, ...] = LOWER_FACE
    # turns (`reggan_plugin.faces.turn`, ascending) at which stage 1 fits each expression, on the pairs and their
    # mirror images about each (training/data/turn_keys.py): a head turned from the camera gets the maps and motion of
    # heads turned as far, not an average over every turn. Empty: one fit over all turns
    stage1_turn_keys: tuple[float, ...] = ()
    # tilts (`reggan_plugin.faces.turn`, ascending) at which each turn key's mean flow is fitted, every pair counting
    # at the two about its own (`ModelConfig.tilt_keys`): a jaw dropping over the neck moves as far as heads tilted
    # as far show it, not the mean over every pitch. Empty: one flow over all tilts
    stage1_tilt_keys: tuple[float, ...] = ()
    # ... on the clean canonical pairs plus `stage1_augment_copies` perturbed copies of each (what users feed the
    # runtime: crops a little off the template, render noise, other exposure and white balance), the perturbation
    # shared by the two images of a pair; lambda is chosen on validation pairs perturbed the same way; the mean
    # flows are always fitted on the clean pairs. Maps fitted on perfect crops alone learn that perfection (noise
    # carried into the edit, a shifted face smeared); with 2 copies a render's edit loses about half as much under
    # other tools' boxes and render noise, but stage 1 smiles less on real photos (docs/experiments/MODEL_NOTES.md, Limitations),
    # so the default is off. The normal equations of the copies cost time, not memory.
    stage1_augment_copies: int = 0
    # ... and `stage1_degrade_copies` copies of the canonical pairs with `stage1_augment`'s input flaws alone (render
    # noise as the runtime's degrain leaves it, JPEG; the target gets the input's change): the edit must not depend on
    # them. Kept apart from the moved copies: a pair both moved and noised teaches neither well.
    stage1_degrade_copies: int = 0
    # ... and one copy of each pair cropped on BlazeFace's keypoints as they are (``data/realign.py``): further off
    # than the runtime's detector, which maps and registers them, ever puts a face.
    stage1_detector_copies: bool = False
    stage1_augment: AugmentConfig = field(default_factory=lambda: STAGE1_AUGMENT)
    # ... for these expressions only (empty: all). Happy is the one expression real photos are judged on, and
    # jittered copies cost it most there (a smile averaged over shifted crops is a weaker smile).
    stage1_augment_expressions: tuple[str, ...] = ()
    # ... on faces brought to one brightness (models/exposure.py): the model gets the training neutrals' median as
    # its exposure_reference and brings every crop to it, so one stop under reaches the maps as the clean face does
    # (a per-pixel bias otherwise paints the clean face's levels into a darker one). Off by default: a face's own
    # brightness is mostly its skin, which tells the maps how dark lips and mouth should be, and normalised maps
    # edit clean faces worse (docs/experiments/MODEL_NOTES.md, Limitations).
    stage1_normalise_exposure: bool = False
    # ... and for some expressions with settings of their own: {"happy": ("ridge_lambdas=0.01", ...), "sad,angry":
    # (...)}, stage-1 settings (stage1_*, `GROUP_RIDGE_SETTINGS`) given over the rest; those expressions' motions and
    # maps are fitted with them, at the radius chosen for the others. One model, one fit: an expression's best stage 1
    # need not be another's (a smile loses strength to jittered copies that sad and angry need).
    stage1_by_expression: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # data
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    dataset_balance: float = 0.5  # dataset sampling weight ~ n_pairs ** balance (0: equal, 1: per pair)
    cache_margin: float = 0.125  # cached crops are (1 + 2 * margin) * S wide, for geometric jitter
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # bookkeeping
    log_every: int = 10
    sample_every: int = 1000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 3
    n_samples: int = 8  # rows of the sample grid

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.batch_size < 1 or self.n_critic < 1 or self.stop_at < 0:
            raise ValueError("iterations >= 0, stop_at >= 0, batch_size >= 1 and n_critic >= 1 are required")
        if any(r % 2 != 1 for r in self.ridge_radii) or not self.ridge_radii or not self.ridge_lambdas:
            raise ValueError(f"ridge radii must be odd and lists non-empty, got {self.ridge_radii}, {self.ridge_lambdas}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
        object.__setattr__(self, "ridge_radii", tuple(int(r) for r in self.ridge_radii))
        object.__setattr__(self, "ridge_lambdas", tuple(float(v) for v in self.ridge_lambdas))
        if len(self.stage1_region_ellipse) != 4 or self.stage1_flow_grid < 0:
            raise ValueError(f"stage1_region_ellipse needs cx,cy,rx,ry and stage1_flow_grid >= 0, got "
                             f"{self.stage1_region_ellipse}, {self.stage1_flow_grid}")
        object.__setattr__(self, "stage1_region_expressions", tuple(self.stage1_region_expressions))
        object.__setattr__(self, "stage1_augment_expressions", tuple(self.stage1_augment_expressions))
        object.__setattr__(self, "stage1_region_ellipse", tuple(float(v) for v in self.stage1_region_ellipse))
        object.__setattr__(self, "stage1_turn_keys", tuple(float(v) for v in self.stage1_turn_keys))
        if not valid_keys(self.stage1_turn_keys):
            raise ValueError(f"stage1_turn_keys must be two or more ascending turns, got {self.stage1_turn_keys}")
        object.__setattr__(self, "stage1_tilt_keys", tuple(float(v) for v in self.stage1_tilt_keys))
        if not valid_tilt_keys(self.stage1_tilt_keys, self.stage1_turn_keys):
            raise ValueError(f"stage1_tilt_keys must be two or more ascending tilts beside turn keys, got "
                             f"{self.stage1_tilt_keys}")
        for name in ("augment", "stage1_augment"):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, AugmentConfig(**getattr(self, name)))
        if self.stage1_augment_copies < 0 or self.stage1_degrade_copies < 0:
            raise ValueError("stage1_augment_copies and stage1_degrade_copies must be >= 0")
        if not self.ridge_colour_tie >= 0:
            raise ValueError(f"ridge_colour_tie must be >= 0, got {self.ridge_colour_tie}")
        object.__setattr__(self, "stage1_by_expression",
                           {str(k): tuple(v) for k, v in dict(self.stage1_by_expression).items()})
        for key, settings in self.stage1_by_expression.items():
            for setting in settings:
                name = setting.partition("=")[0]
                if not (name.startswith("stage1_") or name in GROUP_RIDGE_SETTINGS) or name == "stage1_by_expression":
                    raise ValueError(f"stage1_by_expression[{key!r}]: {name!r} is not a stage-1 setting")

    def stage1_groups(self, expressions: tuple[str, ...]) -> list[tuple[TrainConfig, tuple[str, ...]]]:
        """(settings, expressions) for each fit of stage 1: first the expressions without settings of their own, with
        these (their validation chooses the radius), then each group of `stage1_by_expression` with its own."""
        groups: list[tuple[TrainConfig, tuple[str, ...]]] = []
        taken: set[str] = set()
        for key, settings in self.stage1_by_expression.items():
            listed = {n.strip() for n in key.split(",")}
            names = tuple(e for e in expressions if base_expression(e) in listed)
            taken.update(names)
            groups.append((replace(self, stage1_by_expression={}).with_overrides(list(settings)), names))
        return [(self, tuple(e for e in expressions if e not in taken)), *groups]

    @property
    def end(self) -> int:
        """The iteration the run stops at."""
        return min(self.stop_at, self.iterations) if self.stop_at else self.iterations

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, pairs: list[str]) -> TrainConfig:
        """``["lambda_cls=0.5", "ridge_radii=3,5", "augment.flip=false", "stage1_augment.noise=0"]`` -> a copy
        with those fields set, each value parsed as its field's type; unknown names and bad values are ValueErrors."""
        nested = ("augment", "stage1_augment")
        changes: dict = {}
        augments: dict[str, dict] = {}
        for pair in pairs:
            name, sep, text = pair.partition("=")
            if not sep:
                raise ValueError(f"--set expects NAME=VALUE, got {pair!r}")
            group, dot, key = name.partition(".")
            owner = AugmentConfig if dot and group in nested else TrainConfig
            key = key if owner is AugmentConfig else name
            kinds = {f.name: str(f.type) for f in fields(owner)}  # annotations are strings here
            if key not in kinds or key in nested:
                raise ValueError(f"--set: unknown setting {name!r}")
            if owner is AugmentConfig:
                augments.setdefault(group, {})[key] = _parse(kinds[key], text, name)
            else:
                changes[key] = _parse(kinds[key], text, name)
        for group, values in augments.items():
            changes[group] = replace(getattr(self, group), **values)
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return strict_from_dict(cls, data)
