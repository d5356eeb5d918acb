"""Who performs a write. Every service takes `actor=` so events, notes and audit rows say who."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tenants.models import AuditEntry

if TYPE_CHECKING:
    from tenants.models import ApiKey, Member, Tenant


@dataclass(frozen=True)
class Actor:
    label: str
    source: str  # web | api | customer | system
    member: "Member | None" = None

    @classmethod
    def for_member(cls, member: "Member") -> "Actor":
        return cls(label=member.user.email, source="web", member=member)

    @classmethod
    def for_api_key(cls, key: "ApiKey") -> "Actor":
        return cls(label=f"api key {key.prefix}", source="api")

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=what, source="system")

    @classmethod
    def customer(cls, email: str | None) -> "Actor":
        return cls(label=email or "customer", source="customer")


def audit(*, tenant: "Tenant", actor: Actor, action: str, target: object, **data: object) -> AuditEntry:
    """Append an audit row in the caller's transaction."""
    return AuditEntry.objects.create(
        tenant=tenant,
        actor_label=actor.label,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=str(getattr(target, "pk", target)),
        data=data,
    )
