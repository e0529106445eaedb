"""The function target: AWS Lambda, a published version per model version, a weighted alias for traffic.

One function per model (`function.name`, default the model's name). Deploying a model version
uploads its function package (the Bento's code and its signed model, `serving/function_package.py`)
and publishes a Lambda version whose description names it (`launchbay <model> v<N>`); clients
invoke the alias (`function.alias`, default `live`) through its Function URL or an API Gateway
integration. Traffic moves only by updating that alias: the stable version is the alias's
`FunctionVersion`, a canary step is `RoutingConfig.AdditionalVersionWeights` ({version: share}),
promotion and rollback point the alias at one version with no weights. Lambda cannot mirror
requests, so this target has no shadow step (refused at config load).

The trusted public keys travel in the function's configuration (`LAUNCHBAY_TRUSTED_KEY_PEMS`),
never in the package: every version's handler verifies its model on a cold start before loading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError, EnvironmentProblem
from launchbay.rollout.targets.base import Backend, Processes, Routes

HANDLER = "launchbay_handler.handler"
RUNTIME = "python3.11"
PEMS_ENV = "LAUNCHBAY_TRUSTED_KEY_PEMS"

Packager = Callable[[str, str], bytes]
"""(model, version) -> the version's deployment zip (verified before it is built)."""


class FunctionTarget:
    """A model's AWS Lambda function and its weighted alias."""

    def __init__(
        self, cfg: LaunchbayConfig, client: Any, package: Packager, trusted_pems: str, wait: float = 1.0
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.package = package
        self.pems = trusted_pems
        self.wait = wait
        self.fn = cfg.function.name or cfg.model.name
        self.alias = cfg.function.alias
        self._errors = client.exceptions

    # -- versions ---------------------------------------------------------------------------

    def _description(self, version: str) -> str:
        return f"launchbay {self.cfg.model.name} v{version}"

    def _versions(self) -> dict[str, str]:
        """launchbay version -> Lambda version number (the newest publication of each)."""
        found: dict[str, str] = {}
        try:
            pages = self.client.get_paginator("list_versions_by_function").paginate(FunctionName=self.fn)
            for page in pages:
                for v in page["Versions"]:
                    desc = str(v.get("Description") or "")
                    prefix = f"launchbay {self.cfg.model.name} v"
                    if v["Version"] != "$LATEST" and desc.startswith(prefix):
                        ours = desc.removeprefix(prefix)
                        if ours not in found or int(v["Version"]) > int(found[ours]):
                            found[ours] = v["Version"]
        except self._errors.ResourceNotFoundException:
            return {}
        return found

    def _lambda_version(self, version: str) -> str:
        lv = self._versions().get(str(version))
        if lv is None:
            raise EnvironmentProblem(f"{self.fn}: no Lambda version was published for v{version}")
        return lv

    def _ours(self, lambda_version: str) -> str:
        for ours, lv in self._versions().items():
            if lv == lambda_version:
                return ours
        raise EnvironmentProblem(f"{self.fn}:{lambda_version} was not published by launchbay")

    def _settled(self, waiter: str) -> None:
        self.client.get_waiter(waiter).wait(
            FunctionName=self.fn, WaiterConfig={"Delay": self.wait, "MaxAttempts": 300}
        )

    def _configuration(self) -> dict[str, Any]:
        f = self.cfg.function
        return {
            "Role": f.role,
            "Handler": HANDLER,
            "Runtime": RUNTIME,
            "Timeout": f.timeout_s,
            "MemorySize": f.memory_mb,
            "Layers": list(f.layers),
            "Environment": {
                "Variables": {
                    PEMS_ENV: self.pems,
                    "LAUNCHBAY_MAX_BATCH": str(self.cfg.serving.max_batch_size),
                }
            },
        }

    def deploy(self, model: str, version: str) -> None:
        """Upload the version's package and publish it as a Lambda version. Idempotent."""
        if str(version) in self._versions():
            return
        code = self.package(model, str(version))
        config = self._configuration()
        try:
            self.client.get_function_configuration(FunctionName=self.fn)
            exists = True
        except self._errors.ResourceNotFoundException:
            exists = False
        if not exists:
            if not config["Role"]:
                raise ConfigError("function.role: the execution role's ARN is needed to create the function")
            self.client.create_function(
                FunctionName=self.fn, Code={"ZipFile": code}, Publish=False,
                Tags={"app.kubernetes.io/managed-by": "launchbay", "launchbay.io/model": model}, **config,
            )  # fmt: skip
            self._settled("function_active_v2")
        else:
            if not config["Role"]:
                config.pop("Role")
            self.client.update_function_configuration(FunctionName=self.fn, **config)
            self._settled("function_updated_v2")
            self.client.update_function_code(FunctionName=self.fn, ZipFile=code, Publish=False)
            self._settled("function_updated_v2")
        self.client.publish_version(FunctionName=self.fn, Description=self._description(str(version)))

    def backend(self, version: str) -> Backend:
        """The version's qualified ARN (the alias routes to it)."""
        arn = self.client.get_function_configuration(
            FunctionName=self.fn, Qualifier=self._lambda_version(version)
        )
        return Backend(version=str(version), url=str(arn["FunctionArn"]))

    def started(self, version: str) -> bool:
        """True once a Lambda version was published for `version`."""
        return str(version) in self._versions()

    def health(self, version: str) -> Verdict:
        """The published version's state: Active and its last update successful."""
        lv = self._versions().get(str(version))
        if lv is None:
            return Verdict.FAIL
        conf = self.client.get_function_configuration(FunctionName=self.fn, Qualifier=lv)
        state, update = conf.get("State", "Active"), conf.get("LastUpdateStatus", "Successful")
        if state == "Failed" or update == "Failed":
            return Verdict.FAIL
        return Verdict.PASS if state == "Active" and update == "Successful" else Verdict.INCONCLUSIVE

    # -- traffic ----------------------------------------------------------------------------

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        """Point the alias at stable, with the canary's share as an additional version weight.

        `generation` is not kept here: the reconciler checks the ledger just before writing.
        """
        del generation
        if routes.mirror:
            raise EnvironmentProblem("AWS Lambda cannot mirror requests: this target has no shadow step")
        if routes.stable is None:
            raise EnvironmentProblem("the function target always serves a stable version")
        primary = self._lambda_version(routes.stable.version)
        weights = {}
        if routes.canary is not None and routes.canary_weight > 0:
            weights[self._lambda_version(routes.canary.version)] = round(routes.canary_weight / 100, 4)
        args = {
            "FunctionName": self.fn,
            "Name": self.alias,
            "FunctionVersion": primary,
            "RoutingConfig": {"AdditionalVersionWeights": weights},
        }
        try:
            self.client.update_alias(**args)
        except self._errors.ResourceNotFoundException:
            self.client.create_alias(**args, Description="launchbay: the version clients are served")

    def routes(self) -> Routes:
        """The alias as Lambda has it."""
        try:
            alias = self.client.get_alias(FunctionName=self.fn, Name=self.alias)
        except self._errors.ResourceNotFoundException:
            return Routes()
        stable = self._ours(alias["FunctionVersion"])
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        if not weights:
            return Routes(stable=self.backend(stable))
        ((lv, share),) = weights.items()
        canary = self._ours(lv)
        return Routes(
            stable=self.backend(stable), canary=self.backend(canary), canary_weight=round(100 * float(share))
        )

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Take `version` out of the alias and delete its published version. Idempotent.

        The alias no longer routes to it by then (callers move traffic first); Lambda lets the
        invocations already running finish, so there is nothing to drain here."""
        lv = self._versions().get(str(version))
        if lv is None:
            return
        routes = self.routes()
        if routes.stable is not None and routes.stable.version == str(version):
            raise EnvironmentProblem(f"v{version} is the alias's stable version: promote another first")
        if routes.canary is not None and routes.canary.version == str(version):
            self.set_routes(Routes(stable=routes.stable))
        self.client.delete_function(FunctionName=self.fn, Qualifier=lv)

    def processes(self) -> Processes | None:
        """None: Lambda runs the functions."""
        return None
