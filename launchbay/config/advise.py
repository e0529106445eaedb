"""Prices and traffic for `launchbay advise`: what `launchbay.rollout.advise` reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from launchbay.config.base import Section


class PricesSection(Section):
    """`launchbay advise`'s list prices in USD; a price left out keeps the documented default."""

    k8s_vcpu_hour: Annotated[float, Field(ge=0)] | None = None
    """Price of one vCPU-hour of a cluster node."""
    k8s_gb_hour: Annotated[float, Field(ge=0)] | None = None
    """Price of one GB-hour of a cluster node's memory."""
    run_vcpu_second: Annotated[float, Field(ge=0)] | None = None
    """Knative/Cloud Run: price of one vCPU-second."""
    run_gb_second: Annotated[float, Field(ge=0)] | None = None
    """Knative/Cloud Run: price of one GB-second."""
    run_per_million: Annotated[float, Field(ge=0)] | None = None
    """Knative/Cloud Run: price of one million requests."""
    fn_gb_second: Annotated[float, Field(ge=0)] | None = None
    """Functions: price of one GB-second."""
    fn_per_million: Annotated[float, Field(ge=0)] | None = None
    """Functions: price of one million invocations."""
    fn_max_memory_mb: Annotated[float, Field(gt=0)] | None = None
    """Functions: most memory a function may have."""
    fn_max_package_mb: Annotated[float, Field(gt=0)] | None = None
    """Functions: largest deployment package (unzipped)."""
    edge_max_bundle_mb: Annotated[float, Field(gt=0)] | None = None
    """The largest edge bundle (with its dependencies) your devices take."""

    def given(self) -> dict[str, float]:
        """The prices the file sets."""
        return self.model_dump(exclude_none=True)


class AdviseSection(Section):
    """`launchbay advise`: the price table (USD) replacing any of the documented defaults."""

    prices: PricesSection = PricesSection()
