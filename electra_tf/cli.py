"""The one way commands are built: private absl flags, reference spellings, one-line errors.

Every command (`run_pretraining.py`, `electra-demo`, `electra-convert`, ...) defines its flags on
its own `flags.FlagValues` (so commands never clash in one process) and runs through `run`:
- the reference's argparse spellings work (`--corpus-dir`, `--no-lower-case`);
- `--help` prints the command's usage and every flag it defines;
- a usage error (unknown or missing flag) prints one line and exits with status 2;
- a user error (`ValueError`, `FileNotFoundError`, `FileExistsError`, ... raised by the library
  with a message naming the file or key) prints one line and exits with status 1, no traceback;
  `--traceback` shows it.
"""

import dataclasses
import sys
from collections.abc import Callable

from absl import flags, logging

from electra_tf import hparams as hparams_lib

# What the library raises for bad input; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError)  # OSError: missing files, a full disk, permissions, ...
_HELP = ("-h", "--help", "-help", "--helpfull", "--helpshort")


def normalize_argv(argv, negations=None):
    """Rewrites dashed flag names to absl's underscores and maps `--no-x`/`--do-x` switches.

    Args:
      argv: the command line, program name first.
      negations: {dashed-or-underscored switch: (absl bool flag, value)}, e.g.
        {"no_lower_case": ("do_lower_case", False)}.
    """
    negations = {k.replace("-", "_"): v for k, v in (negations or {}).items()}
    out = [argv[0]]
    for arg in argv[1:]:
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name in negations and not eq:
            flag, flag_value = negations[name]
            out.append(f"--{flag}={'true' if flag_value else 'false'}")
        else:
            out.append(f"--{name}{eq}{value}")
    return out


_DEFINE = {
    str: flags.DEFINE_string,
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_boolean,
    list: flags.DEFINE_list,
}


# Flag rows that mean the same in every command that has them.
CORPUS_DIR = ("corpus_dir", str, None, "Directory of raw text files (any tf.io.gfile path).")
DO_LOWER_CASE = ("do_lower_case", bool, True, "Lower-case the text.")


def define_flags(fv, rows):
    """Defines flags on `fv` from rows `(name, type, default, help)`; a tuple of strings as the
    type defines an enum of those choices."""
    for name, kind, default, help_text in rows:
        if isinstance(kind, tuple):
            flags.DEFINE_enum(name, default, list(kind), help_text, flag_values=fv)
        else:
            _DEFINE[kind](name, default, help_text, flag_values=fv)


def values(fv, *names):
    """{name: value} of the named flags, to pass as keyword arguments."""
    return {name: fv[name].value for name in names}


@dataclasses.dataclass
class Command:
    """A command line: its flags, what it requires, and the library call it makes.

    Args:
      usage: one line after the program name, e.g. "--data_dir=DIR --model_name=NAME [flags]".
      flags: rows `(name, type, default, help)`, see `define_flags`.
      main: fv -> exit status (None is 0); calls one library function.
      required: flag names that must be given.
      negations: extra boolean spellings, see `normalize_argv`.
      validate: fv -> None, raises `flags.Error` for a usage error.
    """

    usage: str
    flags: tuple
    main: Callable
    required: tuple = ()
    negations: dict = None
    validate: Callable = None

    def flag_values(self):
        fv = flags.FlagValues()
        define_flags(fv, self.flags)
        return fv

    def __call__(self, argv=None):
        """Runs the command; returns its exit status (0 ok, 1 user error, 2 usage error)."""
        argv = list(sys.argv if argv is None else argv)
        prog = argv[0].rsplit("/", 1)[-1]
        fv = self.flag_values()
        if any(a in _HELP for a in argv[1:]):
            print(f"Usage: {prog} {self.usage}\n\n{fv.get_help()}")
            return 0
        show_traceback = "--traceback" in argv
        argv = [a for a in argv if a != "--traceback"]
        try:
            rest = fv(normalize_argv(argv, self.negations))
            if len(rest) > 1:
                raise flags.Error(f"unexpected arguments: {' '.join(rest[1:])}")
            for name in self.required:
                if fv[name].value in (None, ""):
                    raise flags.Error(f"--{name} is required")
            if self.validate:
                self.validate(fv)
        except flags.Error as e:
            print(f"{prog}: {e}. Try --help.", file=sys.stderr)
            return 2
        try:
            return self.main(fv) or 0
        except USER_ERRORS as e:
            if show_traceback:
                raise
            message = str(e).strip() or type(e).__name__
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 1

    def entry_point(self):
        """`sys.exit(self())` with absl logging at INFO on stderr (console-script target)."""
        flags.FLAGS.mark_as_parsed()  # absl's own flags at their defaults
        logging.set_verbosity(logging.INFO)
        sys.exit(self())


def job_command(what, config_class, run_job):
    """A reference-style `run_*.py` command: `--data_dir`, `--model_name`, `--hparams` (a JSON dict
    or file, a saved config too) -> `run_job(config_class.from_hparams(hparams, model_name,
    data_dir))`."""

    def main(fv):
        values = hparams_lib.load_hparams(fv.hparams)
        run_job(config_class.from_hparams(values, fv.model_name, fv.data_dir))

    return Command(
        usage="--data_dir=DATA --model_name=NAME [--hparams=JSON]",
        flags=(
            ("data_dir", str, None, "Location of data files (vocab, data, models)."),
            ("model_name", str, None, f"The name of the model being {what}."),
            ("hparams", str, "{}", "JSON dict of hyperparameters, or a JSON file path."),
        ),
        main=main,
        required=("data_dir", "model_name"),
    )
