"""The public surface: ``kctl_runtime.__all__`` is exactly what the package exports."""

from __future__ import annotations

import importlib
import pkgutil
import types

import kctl_runtime


def test_every_name_in_all_is_exported_once() -> None:
    assert len(kctl_runtime.__all__) == len(set(kctl_runtime.__all__))
    for name in kctl_runtime.__all__:
        assert hasattr(kctl_runtime, name), name


def test_every_public_attribute_of_the_package_is_listed_in_all() -> None:
    public = {
        name
        for name, value in vars(kctl_runtime).items()
        if not name.startswith("_") and not (isinstance(value, types.ModuleType) and name != "patch")
    }
    assert public == set(kctl_runtime.__all__)


def test_exported_objects_come_from_the_library() -> None:
    for name in kctl_runtime.__all__:
        value = getattr(kctl_runtime, name)
        module = str(getattr(value, "__module__", None) or getattr(value, "__name__", ""))
        if isinstance(value, str | int | float) or module in {"types", "typing", "collections.abc"}:
            continue  # constants and type aliases
        assert module.startswith("kctl_runtime"), (name, module)


def test_every_public_module_states_its_contract_in_a_docstring() -> None:
    for info in pkgutil.walk_packages(kctl_runtime.__path__, "kctl_runtime."):
        if info.name.endswith("__main__") or "._" in info.name:
            continue  # private modules are documented by the public module that uses them
        module = importlib.import_module(info.name)
        assert module.__doc__, f"{info.name} has no docstring"
        assert len(module.__doc__.strip()) > 40, f"{info.name} does not state its contract"
