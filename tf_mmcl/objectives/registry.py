"""Objective names -> objective classes.

:func:`register` adds a class under a name, :func:`get` resolves a name (with options), an
instance or a serialised config to an :class:`~tf_mmcl.objectives.Objective`, and
:func:`names` lists what is registered, in registration order.
"""

from __future__ import annotations

__all__ = ["get", "get_class", "names", "register", "unregister"]

_REGISTRY = {}


def register(name):
    """Class decorator: registers an :class:`~tf_mmcl.objectives.Objective` under ``name``.

    The class's ``name`` attribute is set to ``name``. Registering a name twice is an error
    unless it is the same class (a module reloaded); :func:`unregister` frees a name.

    Args:
        name: the objective's name, as ``MultimodalContrastiveModel(objective=name)`` takes it.

    Example:
        >>> import tf_mmcl
        >>> @register("clip_again")
        ... class ClipAgain(tf_mmcl.objectives.CLIP):
        ...     pass
        >>> get("clip_again").name, "clip_again" in names()
        ('clip_again', True)
        >>> unregister("clip_again")
    """
    from tf_mmcl.objectives.base import Objective

    if not isinstance(name, str) or not name or not name.isidentifier():
        raise ValueError(f"An objective name must be a non-empty identifier string, got {name!r}.")

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, Objective)):
            raise TypeError(f"register({name!r}) decorates subclasses of tf_mmcl.objectives.Objective, got {cls!r}.")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(
                f"An objective named {name!r} is already registered ({old.__module__}."
                f"{old.__qualname__}); unregister it first or pick another name."
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def unregister(name):
    """Removes ``name`` from the registry (an error if it is not registered)."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown objective {name!r}; expected one of {names()}.")
    del _REGISTRY[name]


def names():
    """The registered objective names, in registration order (a tuple)."""
    return tuple(_REGISTRY)


def get_class(name):
    """The objective class registered under ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the known names).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"Unknown objective {name!r}; expected one of {names()}.")
    return _REGISTRY[name]


def get(objective, **options):
    """An objective instance from a name (plus options), an instance, or a serialised config.

    Args:
        objective: a registered name, an :class:`~tf_mmcl.objectives.Objective` (returned as
            is; then ``options`` must be empty), or the dict of
            ``keras.saving.serialize_keras_object(objective)``.
        **options: the objective's options (only with a name).

    Example:
        >>> get("symile", negative_sampling="n_squared").options["negative_sampling"]
        'n_squared'
    """
    from tf_mmcl.objectives.base import Objective

    if isinstance(objective, Objective):
        if options:
            raise ValueError(
                f"Options {sorted(options)} were given beside an objective instance "
                f"({type(objective).__name__}); pass them to its constructor instead."
            )
        return objective
    if isinstance(objective, dict):
        import keras

        restored = keras.saving.deserialize_keras_object(objective)
        if not isinstance(restored, Objective):
            raise ValueError(f"The objective config does not describe an Objective: {objective!r}.")
        return get(restored, **options)
    return get_class(objective)(**options)
