"""launchbay: MLOps CI/CD with progressive delivery.

This top-level package is deliberately thin: the command line (`launchbay.cli`), configuration
(`launchbay.config`), the local state directory (`launchbay.home`) and the error types every
command turns into a clear message and exit code. Domain logic lives in `pipelines`, `checks`,
`serving` and `rollout`.
"""

__version__ = "0.1.0"
