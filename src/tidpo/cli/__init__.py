"""The ``tidpo`` command line: a thin shell over the library (one module per command, ``make_parser``/``main``)."""
