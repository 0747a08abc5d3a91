"""Who is calling, and what a role lets them do (no database: the CLI's parser uses it too)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES = ("viewer", "operator", "admin")
#: A token's id: what names a token in lists, revocations and the audit trail (never the token).
TOKEN_ID = re.compile(r"tok-[0-9a-f]{16}")


@dataclass(frozen=True)
class Caller:
    project_id: str
    role: str
    user_id: str  # the access key, or the token's id (tok-…, never the token)

    def can(self, needed_role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed_role)
