"""Model names (the config's ``model.name``, the model file's ``model_name``) -> classes.

Every module of the calosim.models package is imported on first look-up, so a new
model registers itself with ``@register("name")`` in its own file, with no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from calosim.errors import CalosimError
from calosim.models.base import GenerativeModel, ModelConfig, config_from_dict

_REGISTRY: dict[str, type[GenerativeModel]] = {}
_NOT_MODELS = {"base", "registry"}
ModelClass = TypeVar("ModelClass", bound=type[GenerativeModel])


def register(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make a GenerativeModel subclass available under ``name``."""

    def decorator(cls: ModelClass) -> ModelClass:
        if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
            raise TypeError(f"@register({name!r}) expects a GenerativeModel subclass, got {cls}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name {name!r} is already taken by {existing.__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return decorator


def _import_model_modules() -> None:
    import calosim.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_MODELS and not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")


def available_models() -> list[str]:
    """Names of all registered models, sorted."""
    _import_model_modules()
    return sorted(_REGISTRY)


def registered_name(model: GenerativeModel) -> str:
    """The name ``model``'s class is registered under; CalosimError for an unregistered one."""
    _import_model_modules()
    for name, cls in _REGISTRY.items():
        if type(model) is cls:
            return name
    raise CalosimError(f"model class {type(model).__name__} is not registered")


def model_classes(name: str) -> tuple[type[ModelConfig], type[GenerativeModel]]:
    """(ConfigClass, ModuleClass) registered under ``name``; CalosimError if unknown."""
    if name not in _REGISTRY:
        _import_model_modules()
    if name not in _REGISTRY:
        raise CalosimError(f"unknown model {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    cls = _REGISTRY[name]
    return cls.config_class, cls


def build_model(
    name: str, config: Mapping[str, Any] | ModelConfig | None = None
) -> GenerativeModel:
    """A freshly initialised model ``name`` from its config (dataclass or plain dict)."""
    config_class, module_class = model_classes(name)
    if not isinstance(config, ModelConfig):
        config = config_from_dict(config_class, config, "model")
    return module_class(config)
