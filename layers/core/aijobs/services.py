"""Clients and services, created once per process and injectable for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aijobs.clock import Clock, system_clock
from aijobs.settings import Settings, get_settings

# Each service's module is imported where the service is first made, not here: a function loads what its own
# handler uses (the scheduler never loads the worker's model client, nor the webhook function the job store's
# readers), and its cold start pays for nothing else (issue 16). The names below are for the annotations.
if TYPE_CHECKING:
    import boto3
    from pydantic import SecretStr

    from aijobs.backends import ModelBackends
    from aijobs.batches import BatchService, BatchStore
    from aijobs.collections import CollectionService
    from aijobs.concurrency import WaitingJobs
    from aijobs.documents import DocumentIndexer
    from aijobs.idempotency import Idempotency
    from aijobs.jobs import JobService
    from aijobs.model_router import ModelRouter
    from aijobs.models.jobs import FileLink
    from aijobs.prompts import PromptService
    from aijobs.queues import DeliveryQueue, JobQueue
    from aijobs.rates import Limiter
    from aijobs.schedules.service import ScheduleService
    from aijobs.store import JobStore, OutputBlobs
    from aijobs.streams import JobEvents
    from aijobs.sweeper import Sweeper
    from aijobs.tenants import TenantService
    from aijobs.usage import UsageService, UsageStore
    from aijobs.vectors import VectorIndex
    from aijobs.waits import JobWaits
    from aijobs.webhooks.dispatcher import WebhookDispatcher
    from aijobs.webhooks.endpoints import WebhookEndpoints
    from aijobs.webhooks.guard import CallbackGuard
    from aijobs.webhooks.outbox import WebhookOutbox
    from aijobs.webhooks.slots import HostSlots
    from aijobs.webhooks.store import WebhookStore
    from aijobs.worker import Worker


@dataclass
class Services:
    """Everything a handler needs, built lazily from one validated ``Settings``; no I/O at import."""

    settings: Settings
    session: boto3.session.Session
    clock: Clock = system_clock
    # Made with the services, not on first use: the local stack's poller threads may race to build the dispatcher
    # (cached_property has no lock), and the cap must be one count per process whichever dispatcher they get.
    webhook_slots: HostSlots = field(init=False)
    _admin_key_value: str | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        from aijobs.webhooks.slots import HostSlots

        self.webhook_slots = HostSlots(self.settings.webhook_max_in_flight_per_host)

    # --- clients ----------------------------------------------------------------------------------

    @cached_property
    def dynamodb(self) -> Any:
        from aijobs.conditions import thread_safe

        return thread_safe(self.session.resource("dynamodb"))  # one resource for every thread

    @cached_property
    def table(self) -> Any:
        return self.dynamodb.Table(self.settings.jobs_table)

    @cached_property
    def sqs(self) -> Any:
        return self.session.client("sqs")

    def _s3(self) -> Any:
        from botocore.config import Config

        # Signature version 4: its presigned URLs are the ones every region accepts (the SDK's default may be 2).
        return self.session.client("s3", config=Config(signature_version="s3v4"))

    @cached_property
    def scheduler_client(self) -> Any:
        return self.session.client("scheduler")

    @cached_property
    def vectors(self) -> VectorIndex:
        """Documents' chunks in the S3 Vectors index (AIJOBS_VECTOR_INDEX_ARN), searched by tenant and collection."""
        from aijobs.vectors import VectorIndex

        return VectorIndex(client=self.session.client("s3vectors"), index_arn=self.settings.vector_index_arn,
                           dimension=self.settings.vector_dimension)

    # --- stores and queues ------------------------------------------------------------------------

    @cached_property
    def _blobs(self) -> OutputBlobs | None:
        """The results bucket (AIJOBS_RESULTS_BUCKET): outputs too large for an item, files, documents' texts."""
        from aijobs.store import OutputBlobs

        return OutputBlobs(bucket=self.settings.results_bucket, client_factory=self._s3) if (
            self.settings.results_bucket) else None

    @cached_property
    def store(self) -> JobStore:
        from aijobs.store import JobStore

        return JobStore(table_name=self.settings.jobs_table, resource=self.dynamodb, clock=self.clock,
                        retention_s=self.settings.retention_s, blobs=self._blobs,
                        sweep_grace_s=self.settings.sweep_grace_s,
                        has_webhook_destinations=lambda job: self.outbox.has_destinations(job),
                        batches=self.batch_store)

    @cached_property
    def batch_store(self) -> BatchStore:
        from aijobs.batches import BatchStore

        return BatchStore(table=self.table, retention_s=self.settings.retention_s, clock=self.clock)

    def file_link(self, key: str) -> FileLink:
        """A presigned URL of a job's output file, for the deployment's ``file_url_ttl_s``."""
        return self.store.file_link(key, ttl_s=self.settings.file_url_ttl_s)

    @cached_property
    def webhook_store(self) -> WebhookStore:
        from aijobs.webhooks.store import WebhookStore

        return WebhookStore(table=self.table, clock=self.clock)

    @cached_property
    def webhook_endpoints(self) -> WebhookEndpoints:
        from aijobs.webhooks.endpoints import WebhookEndpoints

        return WebhookEndpoints(table=self.table, guard=self.callback_guard, clock=self.clock)

    @cached_property
    def job_queue(self) -> JobQueue:
        from aijobs.queues import JobQueue

        return JobQueue(queue_urls=self.settings.jobs_queue_urls, client=self.sqs, clock=self.clock)

    @cached_property
    def delivery_queue(self) -> DeliveryQueue:
        from aijobs.queues import DeliveryQueue

        return DeliveryQueue(queue_url=self.settings.deliveries_queue_url, client=self.sqs)

    # --- services ---------------------------------------------------------------------------------

    @cached_property
    def callback_guard(self) -> CallbackGuard:
        from aijobs.webhooks.guard import CallbackGuard

        return CallbackGuard(allow_private=self.settings.allow_private_callbacks,
                             allow_http=self.settings.allow_http_callbacks)

    @cached_property
    def jobs(self) -> JobService:
        from aijobs.jobs import JobService

        return JobService(store=self.store, queue=self.job_queue, default_model=self.settings.default_model,
                          retention_s=self.settings.retention_s, request_key_ttl_s=self.settings.idempotency_ttl_s,
                          callbacks=self.callback_guard, outbox=self.outbox, clock=self.clock,
                          limits=lambda tenant: self.tenants.limits(tenant), limiter=self.limiter,
                          prompts=self.prompts, batches=self.batch_store)

    @cached_property
    def batches(self) -> BatchService:
        from aijobs.batches import BatchService

        return BatchService(store=self.batch_store, jobs=self.jobs, clock=self.clock,
                            results_settle_s=self.settings.batch_results_settle_s)

    @cached_property
    def prompts(self) -> PromptService:
        from aijobs.prompt_store import PromptStore
        from aijobs.prompts import PromptService

        return PromptService(store=PromptStore(table=self.table), clock=self.clock)

    @cached_property
    def collections(self) -> CollectionService:
        from aijobs.collections import CollectionService

        s = self.settings
        return CollectionService(table=self.table, default_embedding_model=s.embedding_model, clock=self.clock,
                                 vectors=lambda: self.vectors, provider=lambda: self.model_router,
                                 jobs=lambda: self.jobs, blobs=self._blobs, s3=self._s3, usage=self.usage_store,
                                 retention_s=s.retention_s, source_buckets=s.document_source_buckets)

    @cached_property
    def usage_store(self) -> UsageStore:
        from aijobs.usage import UsageStore

        return UsageStore(table=self.table, clock=self.clock)

    @cached_property
    def limiter(self) -> Limiter:
        from aijobs.rates import Limiter

        return Limiter(usage=self.usage_store, limits=self.tenants.limits)

    @cached_property
    def usage(self) -> UsageService:
        from aijobs.usage import UsageService

        return UsageService(store=self.usage_store, limits=self.tenants.limits)

    @cached_property
    def job_waits(self) -> JobWaits:
        from aijobs.waits import JobWaits

        return JobWaits(self.store)

    @cached_property
    def job_events(self) -> JobEvents:
        from aijobs.streams import JobEvents

        return JobEvents(self.store, poll_s=self.settings.stream_poll_s, clock=self.clock)

    @cached_property
    def tenants(self) -> TenantService:
        from aijobs.tenants import FailedAuthentications, TenantService, TenantStore

        return TenantService(store=TenantStore(table=self.table, clock=self.clock), secrets=self.webhook_store,
                             key_cache_s=self.settings.api_key_cache_s, limit_defaults=self.settings.default_limits,
                             secret_overlap_s=self.settings.webhook_secret_overlap_s,
                             failures=FailedAuthentications(limit=self.settings.auth_failures_limit,
                                                            window_s=self.settings.auth_failures_window_s,
                                                            clock=self.clock),
                             admin_key=self._admin_key, schedules=lambda: self.schedules,
                             collections=lambda: self.collections)

    @cached_property
    def outbox(self) -> WebhookOutbox:
        from aijobs.webhooks.outbox import WebhookOutbox

        return WebhookOutbox(store=self.store, ledger=self.webhook_store, queue=self.delivery_queue,
                             redeliveries_per_hour=self.settings.redeliveries_per_hour, clock=self.clock,
                             endpoints=self.webhook_endpoints)

    @cached_property
    def webhook_dispatcher(self) -> WebhookDispatcher:
        # httpx is imported here: only the webhook function loads it.
        from aijobs.retry import RetrySchedule
        from aijobs.webhooks.dispatcher import WebhookDispatcher
        from aijobs.webhooks.sender import WebhookSender

        s = self.settings
        sender = WebhookSender(guard=self.callback_guard, timeout_s=s.webhook_timeout_s,
                               connect_timeout_s=s.webhook_connect_timeout_s, read_timeout_s=s.webhook_read_timeout_s)
        return WebhookDispatcher(store=self.store, ledger=self.webhook_store, queue=self.delivery_queue, sender=sender,
                                 schedule=RetrySchedule(s.webhook_retry_schedule),
                                 slots=self.webhook_slots,
                                 busy_delay_s=s.webhook_busy_host_delay_s, endpoints=self.webhook_endpoints,
                                 clock=self.clock)

    @cached_property
    def schedules(self) -> ScheduleService:
        from aijobs.schedules.eventbridge import EventBridgeSchedules
        from aijobs.schedules.service import ScheduleService
        from aijobs.schedules.store import ScheduleStore

        eventbridge = EventBridgeSchedules(client=self.scheduler_client, group_name=self.settings.schedule_group,
                                           function_arn=self.settings.scheduler_function_arn,
                                           role_arn=self.settings.scheduler_role_arn)
        return ScheduleService(store=ScheduleStore(table=self.table), eventbridge=eventbridge, jobs=self.jobs,
                               clock=self.clock)

    @cached_property
    def idempotency(self) -> Idempotency:
        from aijobs.idempotency import Idempotency

        return Idempotency(table_name=self.settings.idempotency_table,
                           expires_after_s=self.settings.idempotency_ttl_s, boto3_session=self.session)

    @cached_property
    def worker(self) -> Worker:
        from aijobs.retry import RetryPolicy
        from aijobs.worker import Worker

        retry = RetryPolicy(max_attempts=self.settings.max_attempts,
                            base_delay_s=self.settings.retry_base_delay_s,
                            max_delay_s=self.settings.retry_max_delay_s,
                            max_retry_after_s=self.settings.retry_after_max_s)
        from aijobs.concurrency import TenantSlots

        return Worker(store=self.store, provider=self.model_router, retry=retry, lease_s=self.settings.job_lease_s,
                      outbox=self.outbox, clock=self.clock, slots=TenantSlots(table=self.table, clock=self.clock),
                      waiting=self.waiting_jobs,
                      concurrent_jobs=lambda tenant: self.tenants.limits(tenant).concurrent_jobs,
                      usage=self.usage_store, limiter=self.limiter, queue=self.job_queue,
                      output_retries=self.settings.output_invalid_retries, documents=self.document_indexer)

    @cached_property
    def document_indexer(self) -> DocumentIndexer:
        """What an ingest job does (documents.py): chunk, embed and index a collection's documents."""
        from aijobs.documents import DocumentIndexer

        return DocumentIndexer(collections=self.collections, vectors=self.vectors, provider=self.model_router)

    @cached_property
    def model_backends(self) -> ModelBackends:
        """The configured backends (AIJOBS_MODEL_BACKENDS), else the one of AIJOBS_MODEL_BASE_URL for every model."""

        from aijobs.backends import single_backend

        return self.settings.model_backends or single_backend(self.settings.model_base_url)

    @cached_property
    def model_router(self) -> ModelRouter:
        """One ``OpenAIProvider`` per backend behind the router; every backend's key is read here, once per process."""
        from aijobs.backends import SINGLE_BACKEND
        from aijobs.model_router import ModelRouter
        from aijobs.providers import OpenAIProvider, openai_client

        def provider(base_url: str | None, api_key: str) -> OpenAIProvider:
            return OpenAIProvider(lambda: openai_client(api_key=api_key, base_url=base_url))

        s = self.settings
        if s.model_backends is None:
            single = provider(s.model_base_url, self._model_key(s.model_api_key, s.model_api_key_secret_arn))
            return ModelRouter(self.model_backends, {SINGLE_BACKEND: single})
        return ModelRouter(s.model_backends, {
            name: provider(backend.base_url, self._model_key(backend.api_key, backend.api_key_secret_arn))
            for name, backend in s.model_backends.backends.items()})

    @cached_property
    def waiting_jobs(self) -> WaitingJobs:
        """The jobs parked by their tenant's concurrency limit: the worker parks and releases them, the sweeper
        tells their backstop from a repair."""
        from aijobs.concurrency import WaitingJobs

        return WaitingJobs(table=self.table, store=self.store, queue=self.job_queue, clock=self.clock)

    @cached_property
    def sweeper(self) -> Sweeper:
        from aijobs.sweeper import DeadLetters, Sweeper

        dead_letter_urls = self.settings.jobs_dead_letter_queue_urls
        dead_letters = DeadLetters(queue_urls=dead_letter_urls, client=self.sqs) if dead_letter_urls else None
        return Sweeper(store=self.store, queue=self.job_queue, outbox=self.outbox, waiting=self.waiting_jobs,
                       dead_letters=dead_letters,
                       resend_after_s=self.settings.sweep_resend_after_s, limit=self.settings.sweep_limit,
                       clock=self.clock, usage=self.usage_store)

    def renew_clients(self) -> None:
        """Forget the session, every client and every service holding one; each is made again when next used.

        For a copy restored from a SnapStart snapshot (aijobs/snapstart.py): what was made before the snapshot (no
        I/O, so no open connection) must not be shared by the copies. Settings and the per-host webhook slots stay.
        """
        import boto3

        kept = {"settings", "session", "clock", "webhook_slots", "_admin_key_value"}
        for name in [name for name in vars(self) if name not in kept]:
            del self.__dict__[name]
        self.session = boto3.session.Session(region_name=self.settings.region)

    def _admin_key(self) -> str | None:
        """The admin key (None: the admin API is off): AIJOBS_ADMIN_KEY, else the secret AIJOBS_ADMIN_KEY_SECRET_ARN
        names, read on the first admin request and kept for the process (a failed read is tried again next time)."""
        if self.settings.admin_key is not None:
            return self.settings.admin_key.get_secret_value() or None
        if not self.settings.admin_key_secret_arn:
            return None
        if self._admin_key_value is None:
            secrets = self.session.client("secretsmanager")
            value = str(secrets.get_secret_value(SecretId=self.settings.admin_key_secret_arn)["SecretString"])
            self._admin_key_value = value.strip()
        return self._admin_key_value or None

    def _model_key(self, literal: SecretStr | None, secret_arn: str | None) -> str:
        """A model backend's key: the literal (local stack), else the secret's value, else a placeholder."""
        if literal is not None:
            return literal.get_secret_value()
        if secret_arn:
            secrets = self.session.client("secretsmanager")
            return str(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
        return "unset"  # OpenAI-compatible servers without auth still need a non-empty key in the SDK


_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        import boto3

        settings = get_settings()
        _services = Services(settings=settings, session=boto3.session.Session(region_name=settings.region))
    return _services


def current_services() -> Services | None:
    """The process's services if they were made (None: not yet)."""
    return _services


def set_services(services: Services | None) -> None:
    """Replace the process's services (tests, the local stack)."""
    global _services
    _services = services
