"""The local runtime: launchbay's own processes on one machine.

The gateway (`gateway`) in a worker process (`worker`) under a supervisor that holds its sockets
(`supervisor`); model servers started on demand (`launcher`); the local Prometheus (`prometheus`);
the Target implementation that drives them (`target`); demo clients (`clients`).
"""
