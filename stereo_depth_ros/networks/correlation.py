"""1-D horizontal correlation layer (DispNetC) in plain, vectorised torch.

Each image row is cut into tiles of :data:`TILE_WIDTH` columns; one batched matrix product
scores every tile against the right columns its matches can lie in, and the band of the
``max_displacement + 1`` wanted displacements is read with a strided view. On the CPU this is
~4x faster (forward) and ~6x faster (forward + backward) than a loop over displacements at
1/4 of 384x1248, with memory linear in the image width. No custom kernels.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: Columns per tile of the correlation's matrix products. 32 rather than 64: each tile scores
#: ``tile + max_displacement`` right columns to keep ``max_displacement + 1`` of them, so
#: narrower tiles waste less (costnet_fast's volume at 1/4 of 384x1248: 3.1 against 4.2 ms, the
#: same values; training's forward and backward no slower, on a 2-core AMD EPYC).
TILE_WIDTH = 32


def correlation_1d(left: torch.Tensor, right: torch.Tensor,
                   max_displacement: int) -> torch.Tensor:
    """Return the horizontal cost volume ``Bx(D+1)xHxW`` of two ``BxCxHxW`` feature maps.

    Channel ``d`` (0..``max_displacement``) holds the channel mean of
    ``left[..., x] * right[..., x - d]`` (the left pixel matched against the right pixel ``d``
    columns to its left, i.e. disparity ``d``); columns with ``x - d < 0`` see zero padding.
    """
    if left.shape != right.shape or left.dim() != 4:
        raise ValueError(f'correlation needs two BxCxHxW maps of one shape, got '
                         f'{tuple(left.shape)} and {tuple(right.shape)}')
    if max_displacement < 0:
        raise ValueError(f'max_displacement must be >= 0, got {max_displacement}')
    batch, channels, height, width = left.shape
    tile, reach = TILE_WIDTH, max_displacement
    tiles = -(-width // tile)
    padded_width = tiles * tile
    # Rows are cut into tiles of `tile` left columns; each tile is matched against the
    # `tile + reach` right columns that can hold its matches (right padded by `reach` zero
    # columns on the left), with one batched matrix product for all tiles of all rows:
    # scores[n, x, j] = left[x0 + x] . right[x0 + j - reach]; disparity d is the band
    # j = x + reach - d.
    left_tiles = F.pad(left, (0, padded_width - width))
    left_tiles = left_tiles.view(batch, channels, height, tiles, tile)
    left_tiles = left_tiles.permute(0, 2, 3, 4, 1).reshape(-1, tile, channels)
    right_tiles = F.pad(right, (reach, padded_width - width)).unfold(3, tile + reach, tile)
    right_tiles = right_tiles.permute(0, 2, 3, 1, 4).reshape(-1, channels, tile + reach)
    scores = torch.bmm(left_tiles, right_tiles).contiguous()
    band = scores.as_strided((scores.shape[0], tile, reach + 1),
                             (tile * (tile + reach), tile + reach + 1, 1))
    # The channel mean's 1/C in place on the fresh copy that flip makes: no second volume.
    volume = band.flip(2).div_(channels)
    volume = volume.reshape(batch, height, padded_width, reach + 1)[:, :, :width]
    return volume.permute(0, 3, 1, 2)


class Correlation1d(nn.Module):
    """Module wrapper of :func:`correlation_1d` with a fixed ``max_displacement``."""

    def __init__(self, max_displacement: int) -> None:
        super().__init__()
        self.max_displacement = int(max_displacement)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Return the ``Bx(D+1)xHxW`` cost volume."""
        return correlation_1d(left, right, self.max_displacement)

    def extra_repr(self) -> str:
        """Show the displacement range."""
        return f'max_displacement={self.max_displacement}'
