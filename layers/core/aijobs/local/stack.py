"""``make run``: the whole system on 127.0.0.1, from template.yaml, with no AWS account and no OpenAI key."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import sys
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import uvicorn

from aijobs.local.moto_process import start_moto_process
from aijobs.local.server_process import ServerProcess
from aijobs.local.template import (
    ROOT,
    LocalResources,
    QueueSource,
    function_environment,
    load_template,
    provision,
)

FAKE_KEY = "fake-key"
# The local stack's webhook settings unless the environment has its own: receivers on 127.0.0.1 over http, and
# a compressed retry schedule (the deployed default waits up to 10 h between attempts).
LOCAL_WEBHOOK_DEFAULTS = {"AIJOBS_ALLOW_PRIVATE_CALLBACKS": "1", "AIJOBS_ALLOW_HTTP_CALLBACKS": "1",
                          "AIJOBS_WEBHOOK_RETRY_SCHEDULE": "0,2,5,10,30,60"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_handler(function_dir: str, attribute: str) -> Any:
    """Import functions/<dir>/app.py as Lambda would and return its handler."""
    return getattr(load_function(function_dir), attribute)


def load_function(function_dir: str) -> ModuleType:
    """functions/<dir>/app.py, imported as Lambda would (a module of its own each time)."""
    path = ROOT / "functions" / function_dir / "app.py"
    spec = importlib.util.spec_from_file_location(f"aijobs_function_{function_dir}", path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def poller_concurrency(source: QueueSource, env: dict[str, str], *, widest: int | None = None) -> int:
    """Batches a poller runs at once: the worker's AIJOBS_LOCAL_WORKER_CONCURRENCY (2; each job calls the model),
    the others' as many as the template lets Lambda run. The webhook sender needs more consumers than its per-host cap
    of attempts, so that a receiver that never answers cannot hold every one of them.

    ``widest``: the most concurrency the template gives any of the worker's event sources (its priority lanes); a
    lane given less gets its share of the local figure, at least one, so the lanes keep their proportions here."""
    if source.function == "WorkerFunction":
        local = int(env.get("AIJOBS_LOCAL_WORKER_CONCURRENCY") or 2)
        if widest and source.max_concurrency:
            return max(1, local * source.max_concurrency // widest)
        return local
    return source.max_concurrency or 2


def parse_dev_keys(value: str | None) -> dict[str, str]:
    """``tenantA:keyA,tenantB:keyB`` -> {key: tenant}; a generated key for tenant ``dev`` when unset."""
    if not value:
        return {f"aj_dev_{secrets.token_urlsafe(16)}": "dev"}
    pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
    if any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise SystemExit("AIJOBS_DEV_API_KEYS must look like tenantA:keyA,tenantB:keyB")
    return {key.strip(): tenant.strip() for tenant, key in pairs}


@dataclass
class LocalStack:
    """Emulated AWS from template.yaml, the fake model, and the functions' event sources, each in a process of its
    own; the API is served by the caller."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    moto: Any = None
    fake_model: ServerProcess | None = None
    functions: ServerProcess | None = None  # the pollers, the scheduler's firer and the sweeper's rule
    resources: LocalResources | None = None
    api_keys: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self.moto = start_moto_process()  # its conditional writes atomic, as DynamoDB's are; a core of its own
        host, port = self.moto.get_host_and_port()
        os.environ.update({
            "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
        os.environ.pop("AWS_PROFILE", None)
        template = load_template()
        session = boto3.session.Session()
        self.resources = provision(template, session=session, prefix="aijobs-local")
        # Webhooks to receivers on this machine over http: allowed here unless the developer says 0.
        for name, value in LOCAL_WEBHOOK_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # The functions see the environment the template gives them; the developer's own settings win.
        functions = [name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
        for function in functions:
            for name, value in function_environment(template, self.resources, function).items():
                os.environ.setdefault(name, value)
        os.environ.update({"AIJOBS_STAGE": "local", "AIJOBS_MODEL_API_KEY_SECRET_ARN": ""})
        # EMF metrics are CloudWatch's to read: here they would only fill the console.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        warnings.filterwarnings("ignore", "No application metrics to publish")
        os.environ.setdefault("AIJOBS_RETRY_BASE_DELAY_S", "1")
        os.environ.setdefault("AIJOBS_BATCH_RESULTS_SETTLE_S", "1")  # the emulator's indexes are written at once
        self._start_model()
        from aijobs.local.functions_process import start_functions_process
        from aijobs.services import get_services

        self.functions = start_functions_process(self.resources)  # its imports, meanwhile the rest of the start
        tenants = get_services().tenants
        self.api_keys = parse_dev_keys(os.environ.get("AIJOBS_DEV_API_KEYS"))
        for key, tenant in self.api_keys.items():
            tenants.add_api_key(tenant, key)
        if self.fake_model:
            self.fake_model.wait_ready()

    def _start_model(self) -> None:
        real_key = self.env.get("OPENAI_API_KEY") or self.env.get("AIJOBS_MODEL_API_KEY")
        base_url = self.env.get("AIJOBS_MODEL_BASE_URL") or self.env.get("OPENAI_BASE_URL")
        if real_key or base_url:
            os.environ["AIJOBS_MODEL_API_KEY"] = real_key or FAKE_KEY
            os.environ["AIJOBS_MODEL_BASE_URL"] = base_url or "https://api.openai.com/v1"
            return
        port = int(self.env.get("AIJOBS_FAKE_MODEL_PORT") or free_port())
        # In a process of its own, as a model's server is: its answers do not wait on the stack's threads for the GIL
        # (in the stack's process, its streams took a third of it at 300 jobs through the stack).
        self.fake_model = ServerProcess("aijobs.local.fake_model", port, wait=False)  # ready by the end of start()
        os.environ.update({"AIJOBS_MODEL_BASE_URL": f"{self.fake_model.url}/v1",
                           "AIJOBS_MODEL_API_KEY": FAKE_KEY, "AIJOBS_DEFAULT_MODEL": "fake-model"})
        if not self.env.get("AIJOBS_MODEL_BACKENDS"):
            os.environ["AIJOBS_MODEL_BACKENDS"] = json.dumps(local_backends(self.fake_model.url, down_port=free_port()))

    def stop(self) -> None:
        if self.functions:
            self.functions.stop()
        if self.fake_model:
            self.fake_model.stop()
        if self.moto:
            self.moto.stop()


# A model the local stack routes to a backend that is down, with a fallback to the fake model: a job of it shows
# a fallback (README "Model backends").
DOWN_MODEL = "fake-model-down"


def local_backends(fake_url: str, *, down_port: int) -> dict[str, Any]:
    """The local stack's AIJOBS_MODEL_BACKENDS unless the developer gives one: the fake model serves every model
    (backend ``fake``), and ``fake-model-down`` goes first to ``fake-down``, a port nobody listens on, so its jobs
    fall back to ``fake-model``. A refused connection fails at once (the SDK's own retries are off)."""
    return {"backends": {"fake": {"base_url": f"{fake_url}/v1", "api_key": FAKE_KEY},
                         "fake-down": {"base_url": f"http://127.0.0.1:{down_port}/v1", "api_key": FAKE_KEY}},
            "models": [{"model": "fake-model", "backend": "fake"},
                       {"model": DOWN_MODEL, "backend": "fake-down", "fallback": ["fake-model"]}],
            "default_backend": "fake"}


def backends_line() -> str:
    """The banner's line about the local backends: only when they are the stack's own (a fallback to watch)."""
    configured = json.loads(os.environ.get("AIJOBS_MODEL_BACKENDS") or "{}")
    if DOWN_MODEL not in {route.get("model") for route in configured.get("models", [])}:
        return ""
    return (f'Model backends: "fake", and "fake-down" (down): a job with "model": "{DOWN_MODEL}" falls back to '
            'fake-model on "fake" (GET it: backend, provider_model).\n')


def banner(*, url: str, stack: LocalStack) -> str:
    """What ``make run`` prints first: where the API, the model and emulated AWS are, the keys, curl examples."""
    key = next(iter(stack.api_keys))
    admin_console = ", or the admin key" if os.environ.get("AIJOBS_ADMIN_KEY") else ""
    model = f"the fake model at {stack.fake_model.url}" if stack.fake_model else os.environ["AIJOBS_MODEL_BASE_URL"]
    return f"""
aijobs local stack: API {url}  (docs {url}/docs), model: {model}
emulated AWS (moto) at {os.environ['AWS_ENDPOINT_URL']}
API keys: {", ".join(f"{tenant}={k}" for k, tenant in stack.api_keys.items())}
Console: {url}/console  (sign in with one of these keys{admin_console})

  curl -s {url}/v1/jobs -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
       -d '{{"input": "Hello, aijobs"}}'
  curl -s {url}/v1/jobs/<id> -H 'Authorization: Bearer {key}'
  curl -s {url}/v1/schedules -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
       -d '{{"expression": "rate(1 minute)", "job": {{"input": "What time is it?"}}}}'

{backends_line()}{admin_api_line(url)}
Ctrl-C stops everything; data lives only as long as this process.
"""


def admin_api_line(url: str) -> str:
    """Whether /v1/admin/ is on (AIJOBS_ADMIN_KEY set), with examples that read the key from the environment: the
    banner never prints it."""
    if not os.environ.get("AIJOBS_ADMIN_KEY"):
        return "Admin API (/v1/admin/): off; set AIJOBS_ADMIN_KEY to turn it on.\n"
    return f"""Admin API (/v1/admin/): on, with the key in AIJOBS_ADMIN_KEY (not shown here):
  curl -s -X POST {url}/v1/admin/tenants/acme/keys -H "Authorization: Bearer $AIJOBS_ADMIN_KEY"
  curl -s -X PUT {url}/v1/admin/tenants/acme/limits -H "Authorization: Bearer $AIJOBS_ADMIN_KEY" \\
       -H 'Content-Type: application/json' -d '{{"requests_per_minute": 60}}'
"""


# Blocking calls (boto3's) the local API runs at once. Lambda serves one request an instance; this server serves
# them all, and anyio's default of 40 threads kept 100 streams opened together (three calls each) waiting in line.
API_THREADS = 200


def with_threads(app: Any, threads: int) -> Any:
    """``app`` with room for ``threads`` blocking calls at once (``run_in_threadpool``, ``anyio.to_thread``)."""
    import anyio.to_thread

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads  # the server's loop's own limiter
        await app(scope, receive, send)

    return serve


def main() -> None:
    port = int(os.environ.get("PORT") or 8000)
    stack = LocalStack()
    stack.start()
    from aijobs.api import create_app

    app = with_threads(create_app(), API_THREADS)  # while the functions' process starts
    if stack.functions:
        stack.functions.wait_ready()
    print(banner(url=f"http://127.0.0.1:{port}", stack=stack), flush=True)
    if os.environ.get("AIJOBS_ALLOW_PRIVATE_CALLBACKS", "").lower() in ("1", "true", "yes", "on"):
        print("WARNING: callback_url may point at loopback and private addresses here "
              "(AIJOBS_ALLOW_PRIVATE_CALLBACKS=1, for local receivers); set it to 0 for the full SSRF guard. "
              f"Webhook retry schedule: {os.environ.get('AIJOBS_WEBHOOK_RETRY_SCHEDULE')} s.", flush=True)
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    finally:
        stack.stop()
        print("aijobs local stack stopped", file=sys.stderr)
