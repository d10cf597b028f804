"""Node config files (TOML) and the command line, merged into a node's settings.

A node file has a section per command (``[paper]``, ``[live]``: the command's options), and
``[strategy]`` (LSTMStrategyConfig fields, flat), ``[limits]`` (the live node's safety rails),
``[node]`` (trader id, timeouts) and ``[sandbox]`` (paper leverage). An option given on the
command line wins over the file. API keys have no place in it: they come from the environment only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PAPER_KEYS = {"model", "symbol", "market", "balance", "run_dir", "api_url", "ws_url", "flatten_on_stop"}
LIVE_KEYS = {"model", "symbol", "market", "network", "run_dir", "api_url", "ws_url", "ws_api_url", "ws_user_url",
             "flatten_on_stop", "leverage"}
COMMAND_KEYS = {"paper": PAPER_KEYS, "live": LIVE_KEYS}  # each command's own section of a node TOML file
CONFIG_SECTIONS = {*COMMAND_KEYS, "strategy", "limits", "node", "sandbox"}


def read_config(path: Path) -> dict:
    """A node TOML file: sections ``[paper]`` and ``[live]`` (each command's options),
    ``[strategy]`` (LSTMStrategyConfig fields), ``[limits]`` (the live node's safety rails),
    ``[node]`` (trader id, timeouts) and ``[sandbox]`` (paper leverage). API keys have no place
    in it: they come from the environment only."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - CONFIG_SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; expected some of {sorted(CONFIG_SECTIONS)}")
    for command, allowed in COMMAND_KEYS.items():
        unknown = set(raw.get(command, {})) - allowed
        if unknown:
            raise ValueError(f"{path}: unknown [{command}] settings {sorted(unknown)}; expected some of {sorted(allowed)}")
    return raw


def command_settings(raw: dict, command: str, args, sections: tuple[str, ...]) -> dict:
    """The settings of ``command``'s node, as keyword arguments: its section of the node file
    ``raw`` overridden by the command line's options (``args``' attributes of the same names that
    are not None), the log level, and the file's ``sections`` (e.g. ``strategy``)."""
    options = dict(raw.get(command, {}))
    options.update({name: getattr(args, name) for name in COMMAND_KEYS[command] if getattr(args, name, None) is not None})
    for name in ("model", "symbol"):
        if not options.get(name):
            raise ValueError(f"--{name} is required (on the command line or in the [{command}] section of --config)")
    model, run_dir = options.pop("model"), options.pop("run_dir", None)
    return {
        **options,
        "model_path": Path(model),
        "run_dir": Path(run_dir) if run_dir else None,
        "log_level": "DEBUG" if args.verbose else "INFO",
        **{section: raw.get(section, {}) for section in sections},
    }
