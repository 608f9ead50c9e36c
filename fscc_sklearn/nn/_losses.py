"""Supervised contrastive loss and the FSCC training criterion."""

import torch
import torch.nn.functional as F
from torch import nn


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020, "L_out"), as used by FSCC.

    For a batch of features ``f_i`` with labels ``y_i``, the features are
    L2-normalised to ``z_i`` and

    ``loss = mean_{i in A} -1/|P(i)| sum_{p in P(i)} log s_ip``, with
    ``s_ip = exp(z_i.z_p/t) / sum_{k != i} exp(z_i.z_k/t)``,

    where ``P(i)`` are the other samples with label ``y_i`` and ``A`` the anchors
    with at least one positive. Anchors without a positive in the batch are left
    out of the mean (rather than diluting it, as a clamped count would); a batch
    without any positive pair gives a loss of exactly 0 that still carries a
    (zero) gradient. The log-softmax is computed with log-sum-exp, so large
    ``1/temperature`` cannot overflow.

    Parameters
    ----------
    temperature : float, default=0.07
        Softmax temperature ``t``.

    Examples
    --------
    >>> import torch
    >>> loss = SupConLoss()(torch.eye(4), torch.tensor([0, 0, 1, 1]))
    >>> bool(loss > 0)
    True
    """

    def __init__(self, temperature=0.07):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        self.temperature = temperature

    def forward(self, features, labels):
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                "SupConLoss expects features (M, d) and labels (M,); got "
                f"{tuple(features.shape)} and {tuple(labels.shape)}."
            )
        z = F.normalize(features.float(), dim=1)
        logits = z @ z.T / self.temperature
        self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = positives.sum(1)
        has_pos = n_pos > 0
        if not has_pos.any():
            return features.sum() * 0.0
        # where() rather than multiplying, so the -inf diagonal never meets a 0
        pos_log_prob = torch.where(positives, log_prob, 0.0).sum(1)
        return -(pos_log_prob[has_pos] / n_pos[has_pos]).mean()


class CESupConLoss(nn.Module):
    """FSCC's pre-training loss ``CE + sup_con_weight * SupCon``.

    Takes the network's ``(logits, features)`` tuple as prediction.
    :meth:`loss_terms` gives the unweighted terms and :meth:`combine` adds
    them up, so a trainer can report each term of the loss it optimises
    (:class:`~fscc_sklearn.Conv6Embedder` records them in its history).

    Parameters
    ----------
    sup_con_weight : float, default=0.05
        Weight ``lambda`` of the supervised contrastive term (0 gives plain CE).
    temperature : float, default=0.07
        Temperature of :class:`SupConLoss`.

    Examples
    --------
    >>> import torch
    >>> loss = CESupConLoss()
    >>> y_pred, y = (torch.zeros(4, 2), torch.eye(4)), torch.tensor([0, 0, 1, 1])
    >>> terms = loss.loss_terms(y_pred, y)
    >>> sorted(terms), bool(loss.combine(terms) == loss(y_pred, y))
    (['ce', 'supcon'], True)
    """

    def __init__(self, sup_con_weight=0.05, temperature=0.07):
        super().__init__()
        self.sup_con_weight = sup_con_weight
        self.supcon = SupConLoss(temperature=temperature)

    def loss_terms(self, y_pred, y_true):
        """Unweighted terms ``{"ce": ..., "supcon": ...}`` of a batch.

        ``supcon`` is left out when ``sup_con_weight`` is 0 (it is not computed).
        """
        logits, features = y_pred
        terms = {"ce": F.cross_entropy(logits, y_true)}
        if self.sup_con_weight:
            terms["supcon"] = self.supcon(features, y_true)
        return terms

    def combine(self, terms):
        """The loss ``ce + sup_con_weight * supcon`` from :meth:`loss_terms`."""
        loss = terms["ce"]
        if "supcon" in terms:
            loss = loss + self.sup_con_weight * terms["supcon"]
        return loss

    def forward(self, y_pred, y_true):
        return self.combine(self.loss_terms(y_pred, y_true))
