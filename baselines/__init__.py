"""Method adapters: each turns (ground-truth sequence, settings) into output frames aligned by frame id.

``create_adapter(adapter_name, **settings)`` builds one from a TOML table
(``[[methods]] name = ..., adapter = ..., <settings>``); ``list_adapters()`` names them all. The
catalogue (:mod:`baselines.catalogue`) imports an adapter's module on its first lookup.
"""

from baselines.base import Adapter, MethodOutput
from baselines.catalogue import ADAPTERS, create_adapter, list_adapters, register_adapter

__all__ = ["ADAPTERS", "Adapter", "MethodOutput", "create_adapter", "list_adapters", "register_adapter"]
