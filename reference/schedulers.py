"""Samplers by name, kept apart from the models: each is a diffusers scheduler made from the training config.

The pipeline itself takes any diffusers scheduler whose model output is noise (``prediction_type
"epsilon"``), as diffusers users set one: ``pipe.scheduler = UniPCMultistepScheduler.from_config(
pipe.scheduler.config)``. The names here are what the command line and ``render_sequence`` accept.

Step placement: the named samplers use ``timestep_spacing="trailing"`` (the last training timestep
comes first), so a one-step DDIM samples at t = 999 rather than at t = 1, where the SD 1.5
config's "leading" spacing with ``steps_offset=1`` would put it (Lin et al. 2024, "Common diffusion
noise schedules and sample steps are flawed"). LCM places its steps on its own skipping grid, which
starts at t = 999, whatever the spacing; its config carries "trailing" too, so that a scheduler
made the diffusers way from a loaded pipeline's, ``DDIMScheduler.from_config(pipe.scheduler.config)``,
places its steps as ``set_scheduler("ddim")`` does.

The checkpoint's sampler (:func:`checkpoint_sampler`): a training folder holds the training noise
process, a DDPMScheduler with "leading" spacing (at its default 1000 steps it would index t = 1000
and fail). A pipeline loaded from such a folder samples instead with LCM when it has the distilled
LCM-LoRA (the paper's sampler), else with DDIM, each at its default step count; a folder saved
after that holds the sampler itself, and loads with it.

Step counts when none is asked for (:data:`DEFAULT_STEPS`): LCM 10, as the paper samples ("approximately
10 steps"); the undistilled samplers at their usual counts (DDIM 50, DDPM 1000, the multistep
solvers 25).
"""

from __future__ import annotations

from metrics.errors import CabenchError

SCHEDULER_CLASSES = {
    "lcm": "LCMScheduler",
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
SCHEDULERS = tuple(SCHEDULER_CLASSES)
DEFAULT_STEPS = {"lcm": 10, "ddim": 50, "ddpm": 1000, "euler": 25, "euler_a": 25, "dpmpp": 25, "unipc": 25}
UNDISTILLED_SAMPLER = "ddim"  # what ``wo_lcm`` samples with: the undistilled weights' usual sampler


def make_scheduler(name: str, config):
    """A fresh scheduler of kind ``name`` sharing the training noise schedule in ``config``."""
    import diffusers

    if name not in SCHEDULER_CLASSES:
        raise CabenchError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls = getattr(diffusers, SCHEDULER_CLASSES[name])
    known = cls._get_init_keys(cls)
    settings = {k: v for k, v in dict(config).items() if k in known or k.startswith("_")}
    if name != "ddpm":  # DDPM's sampling variance; DPM-Solver reads the key as "the model predicts a variance"
        settings.pop("variance_type", None)
    # a keyword, not a config entry: from_config drops entries the source config left at their default
    return cls.from_config(settings, timestep_spacing="trailing")


def is_training_scheduler(scheduler) -> bool:
    """The training folders' noise process (DDPM, "leading" spacing), which is not a sampler to call."""
    return type(scheduler).__name__ == "DDPMScheduler" and scheduler.config.get("timestep_spacing") == "leading"


def checkpoint_sampler(scheduler, distilled: bool):
    """The sampler a pipeline loaded with ``scheduler`` calls by default: ``scheduler`` itself, unless it
    is the training noise process; then LCM when the FCSD is ``distilled``, else DDIM."""
    if not is_training_scheduler(scheduler):
        return scheduler
    return make_scheduler("lcm" if distilled else UNDISTILLED_SAMPLER, scheduler.config)


def scheduler_name(scheduler) -> str:
    """The name of a scheduler object (its class name when it is not one of :data:`SCHEDULERS`)."""
    by_class = {cls: name for name, cls in SCHEDULER_CLASSES.items()}
    return by_class.get(type(scheduler).__name__, type(scheduler).__name__)


def default_steps(scheduler) -> int:
    """The step count a scheduler (object or name) samples with when none is asked for."""
    name = scheduler if isinstance(scheduler, str) else scheduler_name(scheduler)
    return DEFAULT_STEPS.get(name, 25)


def is_lcm(scheduler) -> bool:
    """Whether ``scheduler`` is the consistency sampler (which uses the LCM-distilled weights)."""
    return type(scheduler).__name__ == "LCMScheduler"


def check_noise_prediction(scheduler) -> None:
    """The models predict noise: a scheduler configured for another target would sample garbage."""
    target = getattr(scheduler.config, "prediction_type", "epsilon")
    if target != "epsilon":
        raise CabenchError(f"{type(scheduler).__name__} is set to prediction_type={target!r}; the ConsistentAvatar "
                           "UNets predict noise: make it with prediction_type='epsilon'")
