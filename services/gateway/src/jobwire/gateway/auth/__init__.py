"""Who is asking and what they may do: bearer tokens, shared keys, scopes, quotas and the audit log."""
