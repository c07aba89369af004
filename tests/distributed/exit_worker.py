"""A user's torchrun script around the ``tidpo`` command (``torchrun --nproc_per_node 2 exit_worker.py OUT ARGS``):
an ``atexit`` handler of the user's, ``tidpo.cli.main.run`` in a ``try``/``finally``, then the console entry's
ending (``leave_process``). Each rank writes ``finally-<rank>``, ``returned-<rank>`` (the status) and
``atexit-<rank>``."""

import atexit
import os
import sys
from pathlib import Path

from tidpo.cli.main import leave_process, run

out, argv = Path(sys.argv[1]), sys.argv[2:]
rank = os.environ["RANK"]
atexit.register(lambda: (out / f"atexit-{rank}").write_text("ran"))
try:
    status = run(argv)
finally:
    (out / f"finally-{rank}").write_text("ran")
(out / f"returned-{rank}").write_text(str(status))
leave_process(status)  # what `tidpo` (tidpo.cli.main.main) does in a torchrun worker once the command is done
