"""Latent consistency distillation (LCD) of the FCSD UNet, so LCM sampling works in 1-10 steps.

One step (Luo et al., LCM, without guidance since the pipeline samples without CFG):
x_t from the ground-truth latent at a solver timestep t on the 50-step DDIM grid (t = 20 i - 1,
the grid LCMScheduler samples from); the frozen teacher takes one DDIM step to t - 20; the student
at t and the EMA target at t - 20 both map to x_0 through the consistency parametrisation
f(x, t) = c_skip(t) x + c_out(t) x0_pred(x, t) (sigma_data 0.5, timestep scaling 10, as in
LCMScheduler); the loss is the MSE between the two. The ControlNet and condition encoder stay
frozen; only the student UNet (the pipeline's ``unet``) learns, and the EMA target follows it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from reference.tsd import tsd

SKIP, SIGMA_DATA, TIMESTEP_SCALING, EMA_DECAY = 20, 0.5, 10.0, 0.95


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scaled = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


class ConsistencyDistillation(nn.Module):
    """``forward(batch, generator) -> loss``; call :meth:`update_target` after each optimizer step."""

    def __init__(self, pipe):
        super().__init__()
        object.__setattr__(self, "pipe", pipe)  # not a submodule: frozen parts stay out of the saved state
        self.student = pipe.unet
        self.teacher = copy.deepcopy(pipe.unet)
        self.target = copy.deepcopy(pipe.unet)
        frozen = (pipe.vae, pipe.text_encoder, pipe.controlnet, pipe.fcsd_encoder, self.teacher, self.target)
        for module in frozen:
            module.eval().requires_grad_(False)
        self.student.train().requires_grad_(True)
        self.register_buffer("alphas", pipe.scheduler.alphas_cumprod.clone().float(), persistent=False)

    @torch.no_grad()
    def update_target(self) -> None:
        for target, student in zip(self.target.parameters(), self.student.parameters()):
            target.mul_(EMA_DECAY).add_(student.detach(), alpha=1 - EMA_DECAY)

    def _eps(self, unet, x, t, control, f_d, context):
        down, mid = self.pipe.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=control,
                                         return_dict=False)
        return unet(x, t, context, cross_attention_kwargs={"condition_tokens": f_d},
                    down_block_additional_residuals=down, mid_block_additional_residual=mid).sample

    def _x0(self, x, eps, t):
        a = self.alphas.to(x.device)[t].view(-1, 1, 1, 1)
        return (x - (1 - a).sqrt() * eps) / a.sqrt()

    def _consistency(self, x, eps, t):
        c_skip, c_out = boundary_scalings(t)
        return c_skip * x + c_out * self._x0(x, eps, t)

    def forward(self, batch, generator: torch.Generator) -> torch.Tensor:
        pipe = self.pipe
        with torch.no_grad():
            latents = pipe.encode_latents(batch["image"])
            guide = tsd(batch["image"])
            f_d = pipe.fcsd_encoder(guide, batch["pose"], batch["expression"], batch["emotion"])
            control = torch.cat([batch["normal"], guide], dim=1)
            context = pipe.text_context(latents.shape[0])
        n = latents.shape[0]
        index = torch.randint(1, 1000 // SKIP + 1, (n,), generator=generator)
        t = (index * SKIP - 1).to(latents.device)
        t_prev = (t - SKIP).clamp_min(0)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        x_t = pipe.scheduler.add_noise(latents, noise, t)

        student = self._consistency(x_t, self._eps(self.student, x_t, t, control, f_d, context), t)
        with torch.no_grad():
            eps_teacher = self._eps(self.teacher, x_t, t, control, f_d, context)
            x0_teacher = self._x0(x_t, eps_teacher, t)
            a_prev = self.alphas.to(x_t.device)[t_prev].view(-1, 1, 1, 1)
            x_prev = a_prev.sqrt() * x0_teacher + (1 - a_prev).sqrt() * eps_teacher
            target = self._consistency(x_prev, self._eps(self.target, x_prev, t_prev, control, f_d, context), t_prev)
        return nn.functional.mse_loss(student.float(), target.float())
