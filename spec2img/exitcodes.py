"""The one table of exit codes of ``spec2img`` and ``classify`` (both CLIs' ``run_main`` use it).

======  =================  ==============================================================
code    name               meaning
======  =================  ==============================================================
0       OK                 everything asked for was done
1       INPUTS_FAILED      the run finished, but some inputs failed or were skipped (see the
                           manifest / CSV rows with status ``failed`` or ``skipped``)
2       USAGE              a bad flag, a bad input (file, folder, config, run folder), or an
                           output that cannot be written (disk full, read-only, folder in use)
3       INTERNAL           a bug: the traceback is printed; please report it
130     INTERRUPTED        Ctrl-C (SIGINT); rerun the same command to resume
======  =================  ==============================================================
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INPUTS_FAILED = 1
    USAGE = 2
    INTERNAL = 3
    INTERRUPTED = 130
