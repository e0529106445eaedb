"""A forkserver preload that leaves a thread running, as a library starting a background thread at
import would: forking from such a process is unsafe (test_warm)."""

import threading
import time

threading.Thread(target=time.sleep, args=(3600,), name="left-running", daemon=True).start()

THREADS_AFTER_IMPORT = threading.active_count()
