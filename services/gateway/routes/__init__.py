"""Route modules, one per area; each registers its routes with shared decorators from
services.gateway.http. Adding a module here is all it takes to add routes."""

import importlib
import pkgutil


def load_all():
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
