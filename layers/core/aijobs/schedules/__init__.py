"""Schedules: a job request fired on a rate, cron or one-time expression by EventBridge Scheduler.

| item | pk | sk | gsi1 |
|---|---|---|---|
| schedule | ``SCHEDULE#<id>`` | ``SCHEDULE`` | ``SCHEDULES#<tenant>`` / ``<id>`` (newest last) |

The jobs a schedule creates carry its id and are listed through gsi2 (``TENANT#<t>#SCHEDULE#<id>``).
"""
