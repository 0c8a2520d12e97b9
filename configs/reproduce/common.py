"""Named variants of the experiment configs: ``configs/reproduce/<experiment>.py:<variant>``.

Each experiment's ``get_config(arg=None)`` returns its full config for ``arg=None`` and a named
variant for ``arg="<variant>"`` (``quick``: fewer seeds, steps and points, for a check in
minutes), as ``--config=configs/reproduce/symile_xor.py:quick`` on the command line.
"""

from __future__ import annotations


def sibling(name: str):
    """The config module ``configs/reproduce/<name>.py`` (configs are files, not a package).

    A derived experiment starts from another's config, e.g. ``sibling("misalignment").get_config()``.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"_reproduce_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variant(config, arg: str | None, **variants):
    """``config`` with the settings of the variant named ``arg`` (``None`` or ``""``: unchanged).

    Args:
        config: the full config (a ``ConfigDict``), edited in place.
        arg: the variant's name, the text after the colon of ``<file>.py:<variant>``.
        **variants: per variant name, its settings ``{key: value}``: keys of ``config``, or dotted
            paths into its nested dicts (``"faithful.enabled"``), as on the command line.

    Returns:
        ``config``.

    Raises:
        ValueError: for an unknown variant (naming the valid ones) or a setting of a key (or a
            dotted path) that ``config`` does not have.

    Example:
        >>> import ml_collections
        >>> c = variant(ml_collections.ConfigDict({"steps": 100}), "quick", quick={"steps": 10})
        >>> c.steps
        10
        >>> c = ml_collections.ConfigDict({"faithful": {"enabled": True}})
        >>> variant(c, "quick", quick={"faithful.enabled": False}).faithful.enabled
        False
    """
    if arg in (None, ""):
        return config
    if arg not in variants:
        raise ValueError(
            f"Unknown config variant {arg!r}; expected one of {sorted(variants)} after the colon "
            f"(e.g. configs/reproduce/symile_xor.py:quick), or no colon for the full config."
        )
    for key, value in variants[arg].items():
        *parents, leaf = key.split(".")
        node = config
        for depth, name in enumerate(parents):
            child = node.get(name) if hasattr(node, "get") else None
            if not hasattr(child, "keys"):
                raise ValueError(
                    f"Variant {arg!r} sets {key!r}, but {'.'.join(parents[: depth + 1])!r} is not a nested "
                    f"dict of the config."
                )
            node = child
        if leaf not in node:
            raise ValueError(f"Variant {arg!r} sets {key!r}, which is not a key of the config {sorted(node)}.")
        node[leaf] = value
    return config
