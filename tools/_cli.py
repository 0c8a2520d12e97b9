"""Flag handling shared by the absl tools in tools/: --help and flag mistakes answered fast.

Importing TensorFlow costs seconds, so the tools import ``tf_mmcl`` inside ``main()`` and this
module checks the command line first, with absl alone: ``--help`` is answered without loading a
``--config`` file (those import the library), an unknown flag or a missing required flag is one
line naming the fix, and absl's own flag errors (a bad integer, ...) are one line too.
"""

from __future__ import annotations

import difflib
import os
import sys

from absl import flags

_HELP = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")


def fail(prog: str, message: str):
    """Exits with ``<prog>: error: <message>`` on one line (no traceback, no usage dump)."""
    sys.exit(f"{prog}: error: {' '.join(str(message).split())}")


def _flag_name(arg):
    return arg.lstrip("-").split("=", 1)[0]


def _is_config(name, config_flag):
    return config_flag is not None and (name == config_flag or name.startswith(config_flag + "."))


def _takes_separate_value(name, arg, config_flag):
    """True for ``--flag value`` (a non-boolean flag given without ``=``)."""
    if "=" in arg:
        return False
    if _is_config(name, config_flag):
        return True
    flag = flags.FLAGS[name] if name in flags.FLAGS else None
    return flag is not None and not flag.boolean


def _scan(args, config_flag):
    """(name, value or None, is_config) for every flag before ``--``."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            name = _flag_name(arg)
            value = arg.split("=", 1)[1] if "=" in arg else None
            if _takes_separate_value(name, arg, config_flag) and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            out.append((name, value))
        i += 1
    return out


def _strip_config(args, config_flag):
    """``args`` without the config file flag and its overrides (help needs neither)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = _flag_name(arg) if arg.startswith("-") else None
        if name is not None and _is_config(name, config_flag):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _known(name):
    if name in flags.FLAGS:
        return True
    return name.startswith("no") and name[2:] in flags.FLAGS and flags.FLAGS[name[2:]].boolean


def moved_config(path: str):
    """``configs/benchmark.py:<b>,<o>`` for a removed ``configs/<b>_<o>.py``, else None.

    The per-pair training config files were replaced by one parametrised file (deprecated
    paths keep working, with a warning, until the next release).
    """
    directory, name = os.path.split(path)
    target = os.path.join(directory, "benchmark.py")
    if os.path.exists(path) or not name.endswith(".py") or not os.path.isfile(target):
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tf_mmcl_benchmark_configs", target)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # ml_collections only at module level: no TensorFlow
        benchmarks = getattr(module, "BENCHMARKS", {})
    except Exception:  # noqa: BLE001 - not ours to report: the caller says the file is missing
        return None
    stem = name[: -len(".py")]
    for benchmark in sorted(benchmarks, key=len, reverse=True):
        if stem.startswith(benchmark + "_") and len(stem) > len(benchmark) + 1:
            return f"{target}:{benchmark},{stem[len(benchmark) + 1 :]}"
    return None


def _redirect_moved_config(prog, argv, config_flag):
    """argv with a removed ``configs/<b>_<o>.py`` replaced by its ``configs/benchmark.py:<b>,<o>``."""
    out, i = list(argv), 1
    while i < len(out):
        arg = out[i]
        if arg in (f"--{config_flag}", f"-{config_flag}") and i + 1 < len(out):
            i, value, prefix = i + 1, out[i + 1], ""
        elif arg.startswith((f"--{config_flag}=", f"-{config_flag}=")):
            prefix, value = arg.split("=", 1)
            prefix += "="
        else:
            i += 1
            continue
        new = moved_config(value)
        if new is not None:
            sys.stderr.write(
                f"{prog}: warning: {value} is deprecated and will be removed in the next release: "
                f"use --{config_flag} {new}\n"
            )
            out[i] = prefix + new
        i += 1
    return out


def flags_parser(
    prog: str,
    required=(),
    config_flag: str | None = None,
    parse=None,
    config_example: str = "configs/benchmark.py:symile_xor,symile",
    removed=None,
):
    """An absl ``flags_parser`` for ``app.run`` that answers mistakes before heavy imports.

    Args:
        prog: the tool's file name, e.g. ``"train.py"`` (prefix of every error line).
        required: flag names that must be given (unless help is asked for).
        config_flag: the name of an ml_collections config-file flag (``"config"``): its
            overrides ``--config.<key>`` pass the name check, and its file must exist.
        parse: the parser to run after the checks (default: ``absl.flags.FLAGS``), e.g. one
            that turns config-override errors into one line.
        config_example: a config file named in the error for a missing one.
        removed: ``{flag name: what to use instead}`` for flags a tool no longer has: giving
            one is an error naming the replacement (not "unknown flag").

    Returns:
        ``parse(argv) -> remaining argv``.
    """

    def run(argv):
        if config_flag is not None:
            argv = _redirect_moved_config(prog, argv, config_flag)
        args = list(argv[1:])
        asked = [a for a in args if a in _HELP or a.startswith("--help")]
        if asked:  # answered here (exit 0), without parsing --config: that would import the library
            from absl import app

            if asked[0].startswith("--helpxml"):
                return _absl(prog, [argv[0], *_strip_config(args, config_flag)], None)
            app.usage(shorthelp=not asked[0].startswith("--helpfull"), writeto_stdout=True)
            sys.exit(0)
        for arg in args:
            if arg == "--":
                break
            if arg.startswith("-") and _flag_name(arg) in (removed or {}):
                fail(prog, f"--{_flag_name(arg)} was removed: {removed[_flag_name(arg)]}")
        if any(_flag_name(a) in ("flagfile", "undefok") for a in args if a.startswith("-")):
            return _absl(prog, argv, parse)  # flags come from elsewhere: let absl check them
        given = {}
        for name, value in _scan(args, config_flag):
            if not _known(name) and not _is_config(name, config_flag):
                own = [f.name for f in flags.FLAGS.flags_by_module_dict().get(sys.argv[0], [])]
                close = difflib.get_close_matches(name, own or list(flags.FLAGS), n=1)
                hint = f" (did you mean --{close[0]}?)" if close else ""
                fail(prog, f"unknown flag --{name}{hint}. Pass --help to see the flags.")
            given[name] = value
        for name in required:
            if name not in given:
                help_text = flags.FLAGS[name].help if name in flags.FLAGS else ""
                fail(prog, f"--{name} is required: {help_text} Pass --help to see the flags.")
        if config_flag is not None and config_flag in given:
            path = (given[config_flag] or "").split(":", 1)[0]
            if not os.path.isfile(path):
                fail(
                    prog,
                    f"--{config_flag}: config file {path!r} does not exist; pass one of the files in "
                    f"{os.path.dirname(config_example.split(':', 1)[0])}/, e.g. --{config_flag} {config_example}.",
                )
        return _absl(prog, argv, parse)

    return run


def _absl(prog, argv, parse):
    try:
        return (parse or flags.FLAGS)(argv)
    except flags.Error as e:
        fail(prog, f"{e}. Pass --help to see the flags.")


class _ListParser(flags.ArgumentParser):
    """``--config.<key>=[1.0, 0.5]`` for a list-valued config key (a Python literal list)."""

    def parse(self, argument):
        if isinstance(argument, (list, tuple)):  # the config's own value, as the flag's default
            return list(argument)
        import ast

        try:
            value = ast.literal_eval(argument)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a Python list such as [0.5, 1.0], got {argument!r}")
        return list(value)

    def flag_type(self):
        return "list"


def parse_config_flags(prog: str, argv):
    """absl's parser with ml_collections ``--config.<key>`` overrides; their errors as one line.

    A list-valued config key takes a Python list (``--config.p_hats=[0.5,1.0]``); an unknown
    key or a value of the wrong type exits with ``<prog>: error: ...``.
    """
    from ml_collections import config_flags

    config_flags.register_flag_parser_for_type(list, _ListParser())
    sys.argv[:] = argv  # ml_collections finds a config's override flags by reading sys.argv
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        text = str(e)
        if "Traceback (most recent call last)" in text:  # get_config raised: its own message, not the trace
            head = text.split("Error whilst parsing config file", 1)[0].rstrip(": ")
            fail(prog, f"{head}: {[line for line in text.splitlines() if line.strip()][-1].strip()}")
        fail(prog, f"{text}. Pass --helpfull to see the flags.")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        text = str(e).strip("'\"").replace("\\n", " ").replace("\n", " ").replace("\\'", "'")
        fail(prog, f"bad --config or --config.<key> override ({type(e).__name__}): {text}")
