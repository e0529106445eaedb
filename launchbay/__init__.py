"""launchbay: MLOps CI/CD with progressive delivery.

One import namespace, in floors that import only downward:

* the foundation -- this package's own modules: `config`, `errors`, `home`, `procs`, `registry`;
* `launchbay.checks` -- gates, signatures and the one `Verdict` type;
* `launchbay.serving` -- the model's service and its packaging;
* `launchbay.rollout` -- releases, the controller, analysis, metrics providers and targets;
* `launchbay.pipelines` -- the Hera workflow, its steps and the local executor;
* `launchbay.cli` -- the command line, which only wires and prints.

The domain packages live in the repository's top-level folders (checks/, serving/, rollout/,
pipelines/), linked into this package. See ARCHITECTURE.md.
"""

__version__ = "0.1.0"


def installed_version() -> str:
    """The installed launchbay's version ("unknown" when run from a source tree without metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("launchbay")
    except PackageNotFoundError:
        return "unknown"
