"""Where a painting added to a trained multi-style net starts: its nearest trained style.

Adding a style trains only its instance-norm scales and shifts. They start from those of the
base style whose outputs already come closest to the new painting, by the training loss's
Gram distance (its style term) on a few training crops, so a short run starts near its end
instead of at the blend of every style. The base's paintings are not
needed: the base styles are judged by what they paint, not by the paintings they came from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.nets import TransformNet

log = logging.getLogger(__name__)

ADD_FROM = ("nearest", "mean")  # or the name of a base style


@torch.no_grad()
def style_losses(net: TransformNet, ploss: PerceptualLoss, crops: torch.Tensor, candidates: Sequence[int],
                 target: int) -> torch.Tensor:
    """(len(candidates),) the style term of the training loss (the Gram distance) of the net's
    outputs on ``crops`` (B, 3, S, S) in each candidate style, against ``ploss``'s style ``target``
    (an index into its styles)."""
    was_training = net.training
    net.eval()
    n, b = net.cfg.n_styles, len(crops)
    content = ploss.content_targets(crops)
    goal = torch.nn.functional.one_hot(torch.tensor([target]), ploss.blend.shape[1]).float()  # (1, S)
    out = []
    for j in candidates:
        style = torch.nn.functional.one_hot(torch.tensor([j]), n).float().expand(b, n)  # (B, N)
        out.append(ploss(net(crops, style), content, None, goal.expand(b, -1))["style"])
    net.train(was_training)
    return torch.stack(out)


def start_new_styles(net: TransformNet, ploss: PerceptualLoss, crops: torch.Tensor, n_base: int,
                     trained: Sequence[int], add_from: str, names: Sequence[str]) -> list[str]:
    """Copy into the norm rows of each new style (the indices >= ``n_base`` of ``trained``, the
    net's styles whose paintings ``ploss`` holds, in order) those of the base style ``add_from``
    names: "nearest" (the lowest ``style_losses`` on ``crops``), or a base style's name. "mean"
    keeps the rows as they are (the mean of the base styles'). Returns the name each new style
    started from."""
    new = [(k, i) for k, i in enumerate(trained) if i >= n_base]
    if add_from == "mean":
        return ["mean"] * len(new)
    picked = []
    for k, i in new:
        if add_from == "nearest":
            losses = style_losses(net, ploss, crops, range(n_base), k)
            j = int(losses.argmin())
            log.info("%s starts from %s, its nearest style (style loss %.4g; mean of all %d: %.4g)", names[i], names[j],
                     losses[j].item(), n_base, losses.mean().item())
        else:
            j = list(names[:n_base]).index(add_from)
        with torch.no_grad():
            for norm in net.norms():
                norm.weight[i] = norm.weight[j]
                norm.bias[i] = norm.bias[j]
        picked.append(names[j])
    return picked
