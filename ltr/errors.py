"""Errors a user can cause. The CLI prints these as one line, without a traceback."""

from __future__ import annotations


class LtrError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class DataFormatError(LtrError, ValueError):
    """An input file or table is malformed. The message names the file, the place and the fault."""


class ConfigError(LtrError, ValueError):
    """A configuration value or command-line option is invalid."""


class ConfigFieldError(ConfigError):
    """One field of a config dataclass is invalid: ``"{owner}.{key} {problem}"``.

    A dataclass checks its own fields (``__post_init__``) and can only name itself as the owner
    (``SetRankConfig.block ...``); whoever builds it from a section a user wrote re-raises the
    error :meth:`under` that section's name, so that the message names the user's key
    (``model.block ...``).
    """

    def __init__(self, owner: str, key: str, problem: str) -> None:
        super().__init__(f"{owner}.{key} {problem}")
        self.owner, self.key, self.problem = owner, key, problem

    def __reduce__(self):  # pickled with its three parts (the message alone cannot rebuild it)
        return type(self), (self.owner, self.key, self.problem)

    def under(self, section: str) -> ConfigFieldError:
        """The same error, its key named as part of ``section`` (e.g. ``model``)."""
        return ConfigFieldError(section, self.key, self.problem)


class RegistryError(LtrError, KeyError):
    """An unknown name was asked of a registry (losses, models, metrics)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> RegistryError:
    """Build the error for an unknown registry name, listing the valid ones."""
    return RegistryError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}")


class InputError(LtrError, ValueError):
    """A request to score candidates is invalid (feature count, values, list size, ids)."""
