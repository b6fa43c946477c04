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

# What the library raises for bad input; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)
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


@dataclasses.dataclass
class Command:
    """A command line: its flags, what it requires, and the library call it makes.

    Args:
      usage: one line after the program name, e.g. "--data_dir=DIR --model_name=NAME [flags]".
      define_flags: fv -> None, defines the flags on `fv`.
      main: fv -> exit status (None is 0); calls one library function.
      required: flag names that must be given.
      negations: extra boolean spellings, see `normalize_argv`.
      validate: fv -> None, raises `flags.Error` for a usage error.
    """

    usage: str
    define_flags: Callable
    main: Callable
    required: tuple = ()
    negations: dict = None
    validate: Callable = None

    def flag_values(self):
        fv = flags.FlagValues()
        self.define_flags(fv)
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


def define_run_flags(fv, what):
    """`--data_dir`, `--model_name` and `--hparams`, as the reference's run_*.py scripts."""
    flags.DEFINE_string(
        "data_dir", None, "Location of data files (model weights, etc).", flag_values=fv
    )
    flags.DEFINE_string("model_name", None, f"The name of the model being {what}.", flag_values=fv)
    flags.DEFINE_string(
        "hparams", "{}", "JSON dict of model hyperparameters, or a JSON file path.", flag_values=fv
    )
