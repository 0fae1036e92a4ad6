"""A pipeline's LoRA adapters (PEFT, as diffusers loads them) on disk and in the models' forward pass.

Conventions:

* **On disk**, every adapter is a LoRA folder in diffusers' format, ``pytorch_lora_weights.safetensors``
  with ``unet.`` / ``text_encoder.``-prefixed PEFT keys and the adapter's ``LoraConfig`` in the
  file's metadata, so diffusers' own ``load_lora_weights`` reads it back with its ranks and alphas:
  the distilled LCM-LoRAs at ``unet_lcm_lora/`` and ``tsdm_unet_lcm_lora/`` (reference/lcm.py), a
  user's adapters at ``loras/<adapter name>/``. ``loras/adapters.json`` records, per model, which
  adapters were active, at which weight (the factor of diffusers' ``set_adapters``), and whether
  the adapters were enabled, so a reloaded pipeline renders what the saved one rendered.
* **The models' own folders hold their base weights only**: :func:`base_weights_only` strips PEFT's
  wrapping (``<layer>.base_layer.weight`` -> ``<layer>.weight``, the LoRA matrices dropped) while a
  model is saved. Without it diffusers writes the wrapped key names, which a reloaded model does not
  recognise (its parameters stay uninitialised).
* **In the forward pass** (:func:`active_adapters`), a user's adapters are on under every sampler, at
  their weights; the LCM-LoRA is added to them when the pipeline samples with LCM and is off
  otherwise (it is the distilled weights, a property of the sampler rather than a style).
"""

from __future__ import annotations

import json
import math
import struct
from contextlib import contextmanager
from pathlib import Path

import torch

from metrics.errors import CabenchError

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
USER_LORAS = "loras"
STATE_FILE = "adapters.json"
ADAPTER_MODELS = ("unet", "tsdm_unet", "text_encoder")  # the pipeline's models that can carry adapters


def lora_layers(model) -> list:
    """PEFT's LoRA layers inside ``model`` (empty when it carries no adapter)."""
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


def adapter_names(model) -> list[str]:
    return list(getattr(model, "peft_config", None) or {})


def adapters_enabled(model) -> bool:
    return not any(layer.disable_adapters for layer in lora_layers(model))


def current_adapters(model) -> list[str]:
    """The adapters the model's layers run with now (none when they are disabled)."""
    layers = lora_layers(model)
    if not layers or not adapters_enabled(model):
        return []
    return list(layers[0].active_adapters)


def set_active(model, names: list[str]) -> None:
    """Run ``model`` with exactly the adapters ``names`` (each at the weight it has), or with none."""
    layers = lora_layers(model)
    for layer in layers:
        if names:
            layer.enable_adapters(True)
            layer.set_adapter(list(names))
        else:
            layer.enable_adapters(False)


@contextmanager
def active_adapters(model, names: list[str]):
    """Run with the adapters ``names`` active (none: every adapter off); the previous set afterwards."""
    layers = lora_layers(model)
    if not layers:
        yield
        return
    enabled, before = adapters_enabled(model), list(layers[0].active_adapters)
    set_active(model, names)
    try:
        yield
    finally:
        for layer in layers:
            layer.set_adapter(before)
            layer.enable_adapters(enabled)


def _scaling(layer, name: str, weight: float) -> float:
    """The scaling PEFT gives adapter ``name`` of ``layer`` at ``weight`` (``LoraLayer.set_scale``'s arithmetic)."""
    rank = math.sqrt(layer.r[name]) if layer.use_rslora.get(name, False) else layer.r[name]
    return weight * layer.lora_alpha[name] / rank


def adapter_weight(model, name: str, what: str = "model") -> float:
    """The weight ``set_adapters`` gave adapter ``name`` (its scaling over alpha / rank): the float that
    gives back each layer's scaling exactly. A weight that differs between layers (block-wise scales)
    is refused by name."""
    layers = [layer for layer in lora_layers(model) if name in layer.scaling]
    if not layers:
        raise CabenchError(f"{what} has no adapter {name!r}")
    first = layers[0]
    estimate = first.scaling[name] / _scaling(first, name, 1.0)
    candidates = (estimate, math.nextafter(estimate, math.inf), math.nextafter(estimate, -math.inf))
    weight = next((w for w in candidates if _scaling(first, name, w) == first.scaling[name]), estimate)
    for layer in layers[1:]:
        if _scaling(layer, name, weight) != layer.scaling[name]:
            raise CabenchError(f"{what}: adapter {name!r} has different weights in different layers (block-wise "
                               "scales cannot be saved with the pipeline); save it with save_lora_weights")
    return weight


def adapter_state(model, what: str = "model") -> dict | None:
    """{"enabled", "active", "weights"} of ``model``'s adapters, or None when it carries none."""
    layers = lora_layers(model)
    if not layers:
        return None
    return {"enabled": adapters_enabled(model), "active": list(layers[0].active_adapters),
            "weights": {name: adapter_weight(model, name, what) for name in adapter_names(model)}}


def restore_adapter_state(model, state: dict) -> None:
    """Set the weights, the active adapters and the enabled flag recorded by :func:`adapter_state`."""
    layers = lora_layers(model)
    for layer in layers:
        for name, weight in state["weights"].items():
            layer.set_scale(name, weight)
        layer.set_adapter(list(state["active"]))
        layer.enable_adapters(bool(state["enabled"]))


def adapter_layers(model, name: str) -> dict[str, torch.Tensor]:
    """Adapter ``name``'s LoRA matrices under PEFT's key names, float32 on the CPU."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, adapter_name=name)
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}


def save_adapter(folder: str | Path, name: str, unet=None, text_encoder=None) -> Path:
    """Adapter ``name`` of ``unet`` (and of ``text_encoder`` when it has one) as a diffusers LoRA folder."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    kwargs = {}
    for prefix, model in (("unet", unet), ("text_encoder", text_encoder)):
        if model is not None and name in adapter_names(model):
            kwargs[f"{prefix}_lora_layers"] = adapter_layers(model, name)
            kwargs[f"{prefix}_lora_adapter_metadata"] = model.peft_config[name].to_dict()
    if not kwargs:
        raise CabenchError(f"no model carries an adapter {name!r}")
    StableDiffusionLoraLoaderMixin.save_lora_weights(folder, weight_name=LORA_WEIGHTS, **kwargs)
    path = Path(folder) / LORA_WEIGHTS
    _sort_metadata(path)
    return path


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors file's header with its ``__metadata__`` keys sorted.

    safetensors writes ``__metadata__`` from a Rust hash map, whose order changes from one process
    to the next; with two keys (``format`` and diffusers' ``lora_adapter_metadata``) the same adapter
    would give other bytes in another process, and the recipe must remake the same files. The tensor
    entries and the data are kept as they are; the header is padded with spaces to a multiple of 8
    bytes, as safetensors pads it."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    if "__metadata__" not in header:
        return
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length:])


def _strip_wrapping(model):
    """A state-dict hook that writes PEFT-wrapped layers under their plain names, without the LoRAs."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = {name: module for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)}

    def hook(module, state_dict, prefix, local_metadata):
        for name, layer in wrapped.items():
            head = f"{prefix}{name}."
            adapter_heads = tuple(f"{head}{part}." for part in (*layer.adapter_layer_names, *layer.other_param_names))
            for key in [k for k in state_dict if k.startswith(head)]:
                if key.startswith(adapter_heads):
                    del state_dict[key]
                elif key.startswith(f"{head}base_layer."):
                    state_dict[head + key[len(f"{head}base_layer."):]] = state_dict.pop(key)

    return hook


@contextmanager
def base_weights_only(models):
    """While the block runs, each model's ``state_dict`` (what ``save_pretrained`` writes) holds its base
    weights under their own names; transformers' models are saved whole, not as their adapter alone."""
    handles, flags = [], []
    for model in models:
        if not lora_layers(model):
            continue
        handles.append(model.register_state_dict_post_hook(_strip_wrapping(model)))
        if getattr(model, "_hf_peft_config_loaded", False):  # transformers would write the adapter alone
            flags.append(model)
            model._hf_peft_config_loaded = False
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for model in flags:
            model._hf_peft_config_loaded = True


def save_user_adapters(pipe, folder: Path, skip: str) -> None:
    """Every adapter but ``skip`` (the LCM-LoRA, saved in its own folders) into ``folder/loras/<name>/``,
    and every model's adapter state into ``folder/loras/adapters.json``."""
    states = {name: adapter_state(getattr(pipe, name), name) for name in ADAPTER_MODELS}
    states = {name: state for name, state in states.items() if state is not None}
    if not states:
        return
    users = sorted({a for name in states for a in adapter_names(getattr(pipe, name)) if a != skip})
    for adapter in users:
        if adapter in adapter_names(pipe.tsdm_unet):
            raise CabenchError(f"tsdm_unet: adapter {adapter!r} is not the LCM-LoRA; only the FCSD UNet and the text "
                               "encoder carry user adapters")
        save_adapter(folder / USER_LORAS / adapter, adapter, pipe.unet, pipe.text_encoder)
    (folder / USER_LORAS).mkdir(parents=True, exist_ok=True)
    (folder / USER_LORAS / STATE_FILE).write_text(json.dumps({"adapters": users, "models": states}, indent=2) + "\n")


def load_user_adapters(pipe, folder: Path, dropped: tuple[str, ...] = ()) -> dict:
    """Load the adapters :func:`save_user_adapters` wrote (after the folder's LCM-LoRAs) and set every
    model's recorded adapter state, leaving out the adapters ``dropped`` (the LCM-LoRA when the
    caller asked for the undistilled weights alone). Returns the states set (empty when none)."""
    record = folder / USER_LORAS / STATE_FILE
    if not record.is_file():
        return {}
    try:
        saved = json.loads(record.read_text())
        users, states = list(saved["adapters"]), dict(saved["models"])
    except (ValueError, KeyError, TypeError) as error:
        raise CabenchError(f"{record} cannot be read: {error}") from None
    for adapter in users:
        pipe.load_lora_weights(str(folder / USER_LORAS / adapter), weight_name=LORA_WEIGHTS, adapter_name=adapter)
    for name, state in states.items():
        if name not in ADAPTER_MODELS:
            raise CabenchError(f"{record}: unknown model {name!r}")
        model = getattr(pipe, name)
        state = {"enabled": state["enabled"], "active": [a for a in state["active"] if a not in dropped],
                 "weights": {a: w for a, w in state["weights"].items() if a not in dropped}}
        missing = set(state["weights"]) - set(adapter_names(model))
        if missing:
            raise CabenchError(f"{record}: {name} has no adapter {sorted(missing)[0]!r} (its LoRA folder is missing)")
        restore_adapter_state(model, state)
    return states
