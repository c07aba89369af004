"""``tidpo compare``: reward-against-KL frontiers of several methods over seeds, from one study file.

:mod:`~tidpo.compare.spec` reads and checks the study file, :mod:`~tidpo.compare.runs` trains each run with a
checkpoint at each listed step, :mod:`~tidpo.compare.evaluate` samples and scores every checkpoint,
:mod:`~tidpo.compare.frontier` holds the math (interpolation at a KL budget, envelope, paired bootstrap), and
:mod:`~tidpo.compare.report` with :mod:`~tidpo.compare.render` writes the report. docs/compare.md explains it all.
"""
