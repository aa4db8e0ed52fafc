"""Options of the learned backends (one dataclass; torch-free, so the node schema is cheap)."""

from dataclasses import dataclass

from ..errors import BackendError
from ..settings import PRECISION_CHOICES, option

PAD_MODES = ('replicate', 'zeros')
#: Values of ``match_passes`` (words YAML does not read as booleans, unlike on and off).
MATCH_PASSES_CHOICES = ('auto', 'always', 'never')
#: Smallest non-zero ``near_scale`` (below it the second pass sees too few pixels).
MIN_NEAR_SCALE = 0.1
#: Smallest scale any pass may run at (also the lower limit of ``scale``).
MIN_PASS_SCALE = 0.05
#: Smallest non-zero ``near_from``.
MIN_NEAR_FROM = 0.05
#: Most near passes a user may ask for.
MAX_NEAR_PASSES = 3
#: The ``max_match_cost`` chosen on validation scenes (models/README.md, "Pixels the images do
#: not confirm"); the option's default stays 0, the dense output.
CHOSEN_MAX_MATCH_COST = 0.5
#: Largest ``refine_radius`` (px) a user may ask for.
MAX_REFINE_RADIUS = 64.0
#: The ``speckle_size`` (px) and ``speckle_range`` (px) chosen on validation scenes
#: (models/README.md, ``costnet_fast`` item 14); the option's default stays 0, the dense
#: output.
CHOSEN_SPECKLE_SIZE = 800
CHOSEN_SPECKLE_RANGE = 1.0


@dataclass(frozen=True)
class LearnedOptions:
    """How a learned network runs; the node's ``learned.*`` parameters (and ``precision``)."""

    precision: str = option(
        'auto', 'Numeric precision of learned backends: auto (fp32 on CPU, fp16 on CUDA), '
        'fp32, bf16 (never chosen by itself; warned about where the CPU emulates it) or fp16 '
        '(CUDA only).', choices=PRECISION_CHOICES, parameter='precision')
    max_disparity: float = option(
        0.0, 'Learned backends: largest valid disparity in pixels (larger predictions are '
        "unknown); 0 = the network's own limit divided by scale (and by near_scale once per "
        'near pass); a value above that range is refused.', limits=(0.0, 2048.0))
    num_threads: int = option(
        0, 'Learned backends on the CPU: torch intra-op threads; 0 = torch default.',
        limits=(0, 256))
    scale: float = option(
        1.0, 'Learned backends: the network sees the images resized by this factor (0.05-1); '
        'its disparity range grows by 1/scale and the network\'s own cost falls by about '
        'scale^2 (the whole backend saves less).',
        limits=(MIN_PASS_SCALE, 1.0))
    pad_mode: str = option(
        'replicate', 'Learned backends: how images are padded to the network divisor.',
        choices=PAD_MODES)
    fuse: bool = option(
        True, 'Learned backends: fold each BatchNorm into the convolution before it (exact '
        'in eval mode, faster).')
    near_scale: float = option(
        0.5, 'Learned backends: a second pass at this fraction of the input scale estimates '
        'large disparities (near objects), where a network is least accurate, and extends '
        'the range by 1/near_scale; 0 = one pass.', limits=(0.0, 0.75))
    near_from: float = option(
        0.0, 'Learned backends: a near pass takes over where its disparity exceeds this '
        "fraction of the range of the pass before it (the first pass's: the network's limit "
        "/ scale; blended over a twelfth of that threshold); 0 = the value chosen for the "
        "network on validation scenes (the network's default_near_from).",
        limits=(0.0, 1.0))
    match_passes: str = option(
        'auto', 'Learned backends with near passes: keep, per pixel, the estimate (each pass '
        'or their blend) whose warped right view matches the left view best, then a 5x5 '
        'median of the result; always, never, or auto = the value chosen for the '
        'network on validation scenes (its default_match_passes: on for costnet and '
        'costnet_fast).',
        choices=MATCH_PASSES_CHOICES)
    torch_compile: bool = option(
        False, 'Learned backends: compile the network with torch.compile (inductor; on the '
        'CPU it needs a C++ compiler) on the first pair of each image size, which then takes '
        'seconds (cached on disk); later pairs run faster (README speed table). If compiling '
        'fails the network runs uncompiled, with a warning.')
    max_match_cost: float = option(
        0.0, 'Learned backends: pixels whose estimate the images do not confirm are unknown: '
        'the windowed matching cost of the right view warped by it (1 - ZNCC + half the mean '
        'absolute difference, at half resolution) is above this value, or the match falls '
        'left of the right image (near objects at the left border, occluded pixels, weak '
        f'texture); 0 = off (dense); {CHOSEN_MAX_MATCH_COST:g} was chosen on validation '
        'scenes for obstacle avoidance with costnet and costnet_fast (models/README.md, '
        '"Pixels the images do not confirm").', limits=(0.0, 4.0))
    refine_radius: float = option(
        -1.0, 'Learned backends: search this many px (full resolution) around the estimate '
        'for the disparity whose warped right view matches the left view best (1 - ZNCC + '
        'half the mean absolute difference: whole half-resolution pixels within the radius '
        'rounded down to an even number, then +-2 px at full resolution with a sub-pixel '
        'fit, then a 5x5 median: at most the radius + 2.5 px before the median; 55-125 ms '
        'per 384x1248 pair on a 2-core CPU); 0 = off; -1 = the radius chosen for the network '
        'on validation scenes (its default_refine_radius: 56 for dispnet, 64 for squeezeseg, 16 '
        'for dispnetc and dispnet_qr, 0 for costnet and costnet_fast; models/README.md, '
        '"Refining by matching").', limits=(-1.0, MAX_REFINE_RADIUS))
    speckle_size: int = option(
        0, 'Learned backends: regions of at most this many pixels whose disparity steps by '
        'more than speckle_range px to every neighbour around them are unknown (the speckle '
        "filter sgbm has: islands a network paints on weak texture and occlusions); 0 = off "
        f'(dense); {CHOSEN_SPECKLE_SIZE} with speckle_range {CHOSEN_SPECKLE_RANGE:g} was '
        'chosen on validation scenes (models/README.md, costnet_fast, item 14).',
        limits=(0, 1_000_000))
    speckle_range: float = option(
        CHOSEN_SPECKLE_RANGE, 'Learned backends with speckle_size: the largest step (px) '
        'between neighbours within one region.', limits=(0.0625, 64.0))
    near_passes: int = option(
        0, 'Learned backends: how many near passes run, each at near_scale times the scale of '
        'the one before; 0 = one, and more while the range is below 192 px (a KITTI camera '
        'at full resolution; at most 3).', limits=(0, MAX_NEAR_PASSES))

    def validate(self) -> None:
        """Refuse near passes so small they would see almost nothing, and tiny ``near_from``."""
        if 0.0 < self.near_from < MIN_NEAR_FROM:
            raise BackendError(f"near_from must be 0 (the network's own) or at least "
                               f'{MIN_NEAR_FROM:g}, got {self.near_from:g}')
        if 0.0 < self.near_scale < MIN_NEAR_SCALE:
            raise BackendError(f'near_scale must be 0 (off) or at least {MIN_NEAR_SCALE:g}, '
                               f'got {self.near_scale:g}')
        if -1.0 < self.refine_radius < 0.0:
            raise BackendError('refine_radius must be -1 (the network\'s own), 0 (off) or '
                               f'> 0 px, got {self.refine_radius:g}')
        passes = max(self.near_passes, 1)
        if self.near_scale and self.scale * self.near_scale ** passes < MIN_PASS_SCALE:
            raise BackendError(f'scale x near_scale^{passes} must be at least '
                               f'{MIN_PASS_SCALE:g} (the coarsest near pass would see almost '
                               f'nothing), got {self.scale:g} x {self.near_scale:g}^{passes}')
