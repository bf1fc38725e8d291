"""The project's own error types. Each message names the file, line or option and says how to fix it."""


class TokclfError(Exception):
    """Base class: caught by the command-line entry points and printed as one line."""


class ConfigError(TokclfError):
    """A bad option, YAML key or option value."""


class LaunchError(ConfigError):
    """A launch this machine cannot run. Every process of the launch decides it alike, so only the first
    (RANK 0) says it: one line, not one per process."""


class DataError(TokclfError):
    """Bad input data: the message names the file and line (or row)."""


class OutputError(DataError):
    """A word of the input that the output format cannot hold (a CoNLL word with a space): the message names
    the record; predict adds the input file."""


class ModelError(TokclfError):
    """A model or tokenizer that cannot be used for token classification."""


class TrainingError(TokclfError):
    """Training cannot go on (repeated non-finite steps, a failed save under --on_save_error stop)."""


class Preempted(TokclfError):
    """SIGTERM/SIGINT: a checkpoint was written and the run stopped; resume with `latest`."""
