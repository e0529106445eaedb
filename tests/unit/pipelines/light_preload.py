"""A step server preload that imports almost nothing: the warm-step tests are about how a step is
started and ended, not about what is imported (test_warm)."""

import threading

import hera.workflows  # noqa: F401  (what every step imports)

THREADS_AFTER_IMPORT = threading.active_count()
