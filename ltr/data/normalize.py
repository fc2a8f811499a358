"""Feature normalisation as a torch module, so it travels inside the model.

``FeatureNormalizer`` applies, per feature ``j``::

    t = sign(x) * log1p(|x|)          (optional, ``log1p=True``; tames heavy-tailed counts)
    z = (t - mean_j) / std_j          (mean/std fitted on training rows, in float64)
    z = 0 where x is missing (NaN)    (i.e. a missing value is imputed with the training mean)

A feature whose training values are constant (std below ``min_std``) gets ``std_j = 1``, so it
maps to 0 instead of dividing by zero; NaNs in the training data are ignored when fitting, and a
feature that is NaN on every training row gets mean 0. No input can therefore produce NaN.
Because the module is part of the model, training, ``ltr evaluate``, ONNX export, the gRPC server
and batch scoring all apply exactly the same transform.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class FeatureNormalizer(nn.Module):
    """Signed-log1p then standardisation, with statistics stored as buffers.

    Args:
        num_features: F.
        log1p: apply ``sign(x) * log1p(|x|)`` before standardising.
        min_std: standard deviations below this are treated as constant features.
    """

    def __init__(self, num_features: int, *, log1p: bool = True, min_std: float = 1e-6):
        super().__init__()
        self.num_features = num_features
        self.log1p = log1p
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def _transform(self, x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log1p(np.abs(x)) if self.log1p else x

    @torch.no_grad()
    def fit(self, features: np.ndarray | Tensor) -> FeatureNormalizer:
        """Fit mean and std on training rows ``[N, F]`` (NaN ignored). Returns ``self``."""
        x = features.detach().cpu().numpy() if isinstance(features, Tensor) else features
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected [rows, {self.num_features}] features, got {x.shape}")
        t = self._transform(x)
        observed = ~np.isnan(t)
        count = observed.sum(axis=0)
        total = np.where(observed, t, 0.0).sum(axis=0)
        mean = np.divide(total, count, out=np.zeros(self.num_features), where=count > 0)
        sq = np.where(observed, (t - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(np.divide(sq, count, out=np.zeros(self.num_features), where=count > 0))
        std = np.where(std < self.min_std, 1.0, std)
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(std))
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``[..., F]``."""
        missing = torch.isnan(x)
        if self.log1p:
            x = torch.sign(x) * torch.log1p(torch.abs(x))
        z = (x - self.mean) / self.std
        return torch.where(missing, torch.zeros_like(z), z)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, log1p={self.log1p}"
