"""A model's training-step gradients against its float64 oracle model's: every parameter's and the image's.

The same rule as an attention case's gradients (bench/measure/gradients.py), per tensor: the
oracle model run in the case's dtype (the plain formulation) sets how close that dtype gets to
the float64 oracle model; a tensor's gradient must stay within MAX_FACTOR times its largest
error and MEAN_FACTOR times its mean error, with a floor relative to that gradient's largest
magnitude and no fixed cap. The loss is the training step's: cross-entropy on the first
image with its label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.measure.gradients import gradient_verdict, tensor_check
from bench.models.attention import set_oracle_mode

IMAGE = "input image"  # the name the image's gradient goes by in a reason


def oracle_model(twin: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Return a fresh copy of twin on the CPU in dtype with every attention computed by its family's oracle."""
    reference = twin.config.build(twin.resolution).to("cpu", dtype).eval()  # a fresh copy: no built variants
    reference.load_state_dict(twin.state_dict())
    set_oracle_mode(reference, True)
    return reference


def training_gradients(model: torch.nn.Module, image: torch.Tensor, label: torch.Tensor,
                       forward=None) -> dict[str, torch.Tensor]:
    """Return the gradient of the cross-entropy on image with label, per parameter name of model and for the image;
    `forward` runs the model (a runtime's form of it, e.g. compiled; the model itself by default)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    image = image.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = (model if forward is None else forward)(image)  # not `or`: a compiled module has no truth value
        loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), label)
        grads = torch.autograd.grad(loss, [p for _, p in named] + [image], allow_unused=True)
    found = {name: grad for (name, p), grad in zip(named, grads) if grad is not None}
    found[IMAGE] = grads[-1]
    return found


def gradient_check(model: torch.nn.Module, twin: torch.nn.Module, image: torch.Tensor, label: torch.Tensor,
                   dtype: str, forward=None) -> dict[str, object]:
    """Return the gradient columns of a model row, its reasons (the worst tensor named) and whether it is a mismatch."""
    got = training_gradients(model, image, label, forward)
    expected = training_gradients(oracle_model(twin, torch.float64), image.to("cpu", torch.float64), label.cpu())
    plain = training_gradients(oracle_model(twin, getattr(torch, dtype)), image.to("cpu", getattr(torch, dtype)), label.cpu())
    checks = {name: tensor_check(got.get(name), reference, None if dtype == "float64" else plain[name], dtype)
              for name, reference in expected.items()}
    judged = gradient_verdict(checks, dtype, name_each=False)
    return {"grad_max_abs_err": judged.max_abs_err, "grad_tolerance": judged.tolerance,
            "grad_mean_abs_err": judged.mean_abs_err, "grad_mean_tolerance": judged.mean_tolerance,
            "reasons": [judged.reason] if judged.reason else [], "mismatch": bool(judged.reason)}
