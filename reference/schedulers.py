"""Sampling schedulers kept apart from the models: DDPM, DDIM and LCM from one training config."""

from __future__ import annotations

from metrics.errors import CabenchError

SCHEDULERS = ("ddpm", "ddim", "lcm")


def make_scheduler(name: str, config):
    """A fresh scheduler of kind ``name`` sharing the training noise schedule in ``config``."""
    from diffusers import DDIMScheduler, DDPMScheduler, LCMScheduler

    classes = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "lcm": LCMScheduler}
    if name not in classes:
        raise CabenchError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls = classes[name]
    known = cls._get_init_keys(cls)
    return cls.from_config({k: v for k, v in dict(config).items() if k in known or k.startswith("_")})


def scheduler_name(scheduler) -> str:
    return {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim", "LCMScheduler": "lcm"}.get(
        type(scheduler).__name__, type(scheduler).__name__
    )
