"""Register candidate versions for the rollout tests, fast: the pipeline's own steps, in one process.

    python candidates.py CONFIG DATA KIND... -> prints {"KIND": "VERSION", ...} as JSON

KIND is `good` (the example model) or a fault of faults.py (errors, slow, crash, disagree). Each
goes through validate-data, train, register, sign and package exactly as in `launchbay run`;
only the champion comparison is skipped (a faulty candidate is meant to reach the rollout).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml


def main() -> None:
    config, data, *kinds = sys.argv[1:]
    project = Path(config).parent
    sys.path.insert(0, str(project))
    from launchbay.pipelines import steps

    base = yaml.safe_load(Path(config).read_text())
    versions = {}
    for kind in kinds:
        cfg = dict(base)
        cfg["model"] = {**base["model"]}
        if kind != "good":
            cfg["model"]["train"] = f"faults:train_{kind}"
            cfg["model"]["code"] = ["faults.py", "fraud_model.py"]  # shipped in the Bento
        variant = project / f"candidate-{kind}.yaml"
        variant.write_text(yaml.safe_dump(cfg, sort_keys=False))
        run_id, digest = steps.validate_data(str(variant), data)
        uri = steps.train(str(variant), data, run_id)
        version, _ = steps.register(str(variant), run_id, uri, digest)
        steps.sign_model(str(variant), data, run_id, version, digest)
        steps.package(str(variant), version)
        # Building a Bento sets $LAUNCHBAY_MODEL in this process, which is how faults.py knows it
        # is served: clear it, or the next candidate would misbehave while training.
        os.environ.pop("LAUNCHBAY_MODEL", None)
        versions[kind] = version
    print(json.dumps(versions))


if __name__ == "__main__":
    main()
