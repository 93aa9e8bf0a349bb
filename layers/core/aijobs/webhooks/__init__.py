"""Completion webhooks: the callback URL guard, Standard Webhooks signing, the delivery ledger and the sender."""
