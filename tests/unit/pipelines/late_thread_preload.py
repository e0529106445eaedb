"""A step server preload whose later item starts a thread, as a library might at import: the
server must stop forking from then on (test_warm)."""

import threading
import time


def _start_thread() -> None:
    threading.Thread(target=time.sleep, args=(3600,), name="left-running", daemon=True).start()


THREADS_AFTER_IMPORT = threading.active_count()
LATER = (_start_thread,)
