"""absl flags that also accept the reference's argparse spellings (`--corpus-dir`, `--no-lower-case`)."""

import sys

from absl import app


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


def run_main(main, negations=None):
    """`absl.app.run` with the dashed spellings accepted."""
    app.run(main, argv=normalize_argv(sys.argv, negations))
