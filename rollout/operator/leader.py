"""Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

Replicas of the controller share one Lease. The holder renews it every round; another replica
takes it only when the record it last saw has not changed for the lease's duration, timed by its
own clock (never by comparing its clock with the holder's `renewTime`: clocks of two nodes drift).
Every write is a replace carrying the resourceVersion read, so of two replicas racing for an
expired lease exactly one wins (the other gets 409). A replica that stops hands the lease back,
so a rolling update waits for no expiry.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lightkube import ApiError, Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class LeaderElection:
    """Holds (or waits for) the Lease `namespace/name` as `identity`."""

    client: Client
    namespace: str
    name: str
    identity: str
    duration: float = 15.0
    monotonic: Callable[[], float] = time.monotonic
    leading: bool = False
    _seen: tuple[str | None, str | None] | None = None  # (holder, renewTime) last observed
    _seen_at: float = 0.0

    def _record(self, lease: Lease) -> tuple[str | None, str | None]:
        spec = lease.spec or LeaseSpec()
        renew = spec.renewTime.isoformat() if spec.renewTime else None
        return spec.holderIdentity, renew

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this replica leads. API errors count as not leading (a leader
        that cannot renew must stop acting before another one may start)."""
        try:
            self.leading = self._attempt()
        except ApiError as exc:
            if exc.status.code != 409:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc.status.message)
            self.leading = False
        return self.leading

    def _attempt(self) -> bool:
        now = _now()
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            self.client.create(Lease(
                metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                spec=LeaseSpec(holderIdentity=self.identity, leaseDurationSeconds=round(self.duration),
                               acquireTime=now, renewTime=now, leaseTransitions=0),
            ))  # fmt: skip
            log.info("lease %s/%s: created, leading as %s", self.namespace, self.name, self.identity)
            return True
        record = self._record(lease)
        if record != self._seen:
            self._seen, self._seen_at = record, self.monotonic()
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity
        if holder and holder != self.identity:
            duration = spec.leaseDurationSeconds or self.duration
            if self.monotonic() - self._seen_at < duration:
                return False  # held, and renewed within its duration as far as we have watched
            log.info("lease %s/%s: %s stopped renewing; taking over", self.namespace, self.name, holder)
        if holder != self.identity:
            spec.acquireTime = now
            spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
        spec.holderIdentity, spec.renewTime = self.identity, now
        spec.leaseDurationSeconds = round(self.duration)
        lease.spec = spec
        updated = self.client.replace(lease)  # carries the resourceVersion read: 409 if it moved
        self._seen, self._seen_at = self._record(updated), self.monotonic()
        return True

    def release(self) -> None:
        """Hand the lease back (on a clean stop), so that a standby takes over at its next round."""
        if not self.leading:
            return
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.renewTime = None
                self.client.replace(lease)
        except ApiError as exc:
            log.warning("lease %s/%s: could not hand back: %s", self.namespace, self.name, exc.status.message)
        self.leading = False
