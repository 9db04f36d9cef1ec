"""Model and training configuration: one frozen dataclass per concern, built at the entry point."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from reggan_plugin.expressions import EXPRESSIONS, MODELLED_CHANNELS
from reggan_plugin.faces.turn import valid_keys, valid_tilt_keys
from reggan_plugin.geometry.resample import WARP_MODES, WarpMode


def strict_from_dict(cls, data: dict):
    """Build dataclass `cls` from `data`, refusing unknown keys (a renamed field must not drop silently)."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return cls(**data)


MIXES = ("maps", "carried")


TURN_MARK = "~turn"


def turn_key_name(expression: str, key: int) -> str:
    """The name training gives an expression's fit at its ``key``-th turn key (stage 1 alone has such fits)."""
    return f"{expression}{TURN_MARK}{key}"


def base_expression(name: str) -> str:
    """The expression a turn key's fit belongs to; a plain name as it is."""
    return name.partition(TURN_MARK)[0]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored beside every checkpoint and in the ONNX metadata)."""

    image_size: int = 128  # S: the aligned face crop is S x S
    expressions: tuple[str, ...] = EXPRESSIONS  # target expressions, in the order of the one-hot input
    radius: int = 3  # r: stage 1's receptive field is r x r (odd)
    conv_dim: int = 24  # refiner width after the first 7x7 conv
    n_res: int = 2  # spatial-attention residual blocks in the refiner bottleneck
    max_flow: float = 0.15  # largest warp, in grid units (2 = crop width): 0.15 is 7.5% of the crop
    d_conv_dim: int = 32  # discriminator width
    d_layers: int = 5  # discriminator stride-2 convolutions
    # > 0: every crop is brought to this mean linear luminance of its centre before stage 1 and the refiner, and
    # the change scaled back (models/exposure.py); 0: the crop goes in as it is
    exposure_reference: float = 0.0
    # how both stages move the crop by their motion (GridSample's mode): a bilinear sample blurs by how far it falls
    # between pixels, so a motion growing along a ramp makes the texture pump frame to frame and a moved face loses
    # its fine detail; bicubic blurs far less, and the same at every offset
    warp: WarpMode = "bilinear"
    # how stage 1 mixes expressions, a partial intensity included (models/stage1.py): "maps", the mixed maps on the
    # mix's moved input; "carried", each expression's paint made where its maps were fitted and carried to the mix's
    # moved input, which keeps a mix's paint on its features (no fragments between a smile and a surprise), for
    # about twice the network's CPU time at 128 px with 7 expressions (every expression's paint is made and carried,
    # one alone too). A channel model's 52 channels paint faintly:
    # carried costs it 3x for no gain on development mixes (within 0.2 dB by channel group) or ramps.
    mix: str = "maps"
    # stage 1 fitted once per expression at each of these turns (`reggan_plugin.faces.turn`, ascending), a face taking
    # the two keys about its own: the network's expression input is then expression-major, len(turn_keys) weights an
    # expression (`split_turn`). Empty: one fit for every turn
    turn_keys: tuple[float, ...] = ()
    # each turn key's mean flow fitted at each of these tilts (`reggan_plugin.faces.turn`, ascending; turn keys
    # needed), a face's flow taking the two about its own; its maps are one for every tilt. The expression input is
    # then len(turn_keys) * len(tilt_keys) weights an expression, turn-major. Empty: one flow for every tilt
    tilt_keys: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.exposure_reference < 1.0:
            raise ValueError(f"exposure_reference must be in [0, 1), got {self.exposure_reference}")
        if self.radius % 2 != 1:
            raise ValueError(f"radius must be odd, got {self.radius}")
        if self.warp not in WARP_MODES:
            raise ValueError(f"warp must be 'bilinear' or 'bicubic', got {self.warp!r}")
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        object.__setattr__(self, "expressions", tuple(self.expressions))
        object.__setattr__(self, "turn_keys", tuple(float(k) for k in self.turn_keys))
        if not valid_keys(self.turn_keys):
            raise ValueError(f"turn_keys must be two or more ascending turns, or none; got {self.turn_keys}")
        object.__setattr__(self, "tilt_keys", tuple(float(k) for k in self.tilt_keys))
        if not valid_tilt_keys(self.tilt_keys, self.turn_keys):
            raise ValueError(f"tilt_keys must be two or more ascending tilts beside turn keys, or none; got "
                             f"{self.tilt_keys}")

    @property
    def keys_per_expression(self) -> int:
        """How many stage-1 fits each expression has (its turn keys, else 1)."""
        return max(len(self.turn_keys), 1)

    @property
    def tilts_per_key(self) -> int:
        """How many mean flows each turn key's fit has (its tilt keys, else 1)."""
        return max(len(self.tilt_keys), 1)

    def stage1_index(self, name: str) -> int:
        """Where stage 1 keeps an expression's fit: a plain name, or one of its turn keys (`turn_key_name`)."""
        base, _, key = name.partition(TURN_MARK)
        return self.expressions.index(base) * self.keys_per_expression + (int(key) if key else 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        # a saved config may name its crop; the face is the only one
        if data.get("crop", "face") != "face":
            raise ValueError(f"a model of the {data['crop']!r} crop: only face crops are made")
        return strict_from_dict(cls, {k: v for k, v in data.items() if k != "crop"})


TINY = ModelConfig(image_size=32, conv_dim=8, n_res=1, d_conv_dim=8, d_layers=3)
"""A few-kilobyte model for tests and smoke runs."""
CHANNELS = ModelConfig(image_size=64, radius=1, expressions=("neutral", *MODELLED_CHANNELS))
"""The channel model: an expression per ARKit blendshape the face model has (`MODELLED_CHANNELS`), each
fitted on renders of that blendshape alone. 64 px and a 1 px field: 51 channels' maps in a few megabytes; the motion,
which is most of what a channel does, is pasted at the frame's own resolution."""
