"""One source of defaults: the pydantic models (winnow.core.config, config_models, config_scale).

The packaged ``defaults.toml`` is the commented reference copy users read and override; it is
loaded first at start-up, so if it drifted from the models, the product would silently run with
values the code does not state. This test fails on any key where the two disagree, naming it.
"""

from __future__ import annotations

from typing import Any

from winnow.core.config import WinnowConfig, default_dict, load_config


def _divergences(toml: Any, models: Any, path: str = "") -> list[str]:
    if isinstance(toml, dict) and isinstance(models, dict):
        out = []
        for key in sorted(set(toml) | set(models)):
            if key not in toml or key not in models:
                out.append(f"{path}{key}: only in {'defaults.toml' if key in toml else 'the models'}")
            else:
                out += _divergences(toml[key], models[key], f"{path}{key}.")
        return out
    return [] if toml == models else [f"{path[:-1]}: defaults.toml {toml!r} != models {models!r}"]


def test_defaults_toml_equals_the_models_defaults() -> None:
    from_toml = WinnowConfig.model_validate({**default_dict(), "home": "h"}).model_dump(mode="json")
    from_models = WinnowConfig.model_validate({"home": "h"}).model_dump(mode="json")
    assert _divergences(from_toml, from_models) == []


def test_every_defaults_toml_key_is_a_model_field() -> None:
    # extra="forbid" rejects unknown keys, so a key left in the toml for a removed field fails here
    load_config("h", environ={})


def test_the_check_sees_a_divergence() -> None:
    toml = default_dict()
    toml["models"]["als"]["factors"] = WinnowConfig().models.als.factors + 1
    changed = WinnowConfig.model_validate({**toml, "home": "h"}).model_dump(mode="json")
    models = WinnowConfig.model_validate({"home": "h"}).model_dump(mode="json")
    assert _divergences(changed, models) == [
        f"models.als.factors: defaults.toml {models['models']['als']['factors'] + 1} != models "
        f"{models['models']['als']['factors']}"]


# a constructor default the config states differently on purpose, and why
_MAPPED = {("popularity_recent", "window_days"): "config None (no window) -> from_config uses 30 days"}


def _constructor_divergences(config: WinnowConfig) -> list[str]:
    """Every registered retrieval model's constructor default that differs from its config
    section's field of the same name (a bare ``ALSRecommender()`` must be the configured ALS)."""
    import inspect

    from winnow.models.registry import MODELS

    out = []
    for name in MODELS:
        cls = MODELS.get(name)
        section = getattr(config.models, getattr(cls, "section", None) or name, None)
        if section is None:
            continue
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.default is inspect.Parameter.empty or not hasattr(section, param.name):
                continue
            if (name, param.name) not in _MAPPED and param.default != getattr(section, param.name):
                out.append(f"{name}.{param.name}: constructor {param.default!r} != config "
                           f"{getattr(section, param.name)!r}")
    return out


def test_model_constructors_default_to_the_config() -> None:
    assert _constructor_divergences(WinnowConfig.model_validate({"home": "h"})) == []


def test_the_constructor_check_sees_a_divergence() -> None:
    cfg = WinnowConfig.model_validate({"home": "h", "models": {"als": {"factors": 7}}})
    assert any(d.startswith("als.factors: constructor 32") for d in _constructor_divergences(cfg))
