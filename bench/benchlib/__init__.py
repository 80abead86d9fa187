"""Benchmarks of the installed ``nuseal`` against the real limits of the machine, measured in the same run.

One module per area (``verify``, ``sign``, ``startup``, ``batch``, ``timestamp``) with a ``main(argv)``; ``bench/all``
runs them all and prints a summary table. Shared: ``measure`` (timing whole processes), ``fixtures`` (PKI,
packages, a TSA), ``report`` (tables, target checks).
"""
