"""Typed models by feature: what a client sends, what is stored, what the API answers, what queues carry.

One convention for what the API shows: a stored model (``Job``) has ``to_public()`` returning its public
projection (``JobOut``), which never holds internal fields (tenant, lease, webhook marks, storage keys).
Anything that needs I/O or the clock to project (a schedule's next fire times) is passed in by the service.
"""
