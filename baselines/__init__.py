"""Method adapters: each turns (ground-truth sequence, settings) into output frames aligned by frame id.

``create_adapter(adapter_name, **settings)`` builds one from a TOML table
(``[[methods]] name = ..., adapter = ..., <settings>``); ``list_adapters()`` names them all.
"""

from baselines.base import Adapter, MethodOutput, create_adapter, list_adapters, register_adapter

__all__ = ["Adapter", "MethodOutput", "create_adapter", "list_adapters", "register_adapter"]
