"""``make run``'s functions, in a process of their own: the pollers that hand the worker and the webhook sender their
queues' messages (Lambda's event source mappings), the scheduler's firer (EventBridge Scheduler) and the sweeper's
rule. Apart from the API's process, as the functions are apart from the API in AWS: a burst of jobs starting does not
hold the API's requests back on one GIL (100 streams opened while their 100 jobs started waited up to 7 s).

``python -m aijobs.local.functions_process PORT``, in the stack's environment, with its resources' names in
AIJOBS_LOCAL_RESOURCES; it listens on PORT once everything runs (``ServerProcess`` waits for that, nothing is served
there), and stops when its stdin closes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from aijobs import snapstart
from aijobs.local.firer import RuleFirer, ScheduleFirer
from aijobs.local.pollers import QueuePoller
from aijobs.local.server_process import ServerProcess, serve_until_stdin_closes
from aijobs.local.stack import load_function, load_handler, poller_concurrency
from aijobs.local.template import LocalResources, load_template, rate_rules, sqs_sources

RESOURCES_VARIABLE = "AIJOBS_LOCAL_RESOURCES"


def start_functions_process(resources: LocalResources) -> ServerProcess:
    """The functions' process, started with this process's environment (which it reads as its own); its
    ``wait_ready()`` returns once its pollers run (a few seconds of imports: the caller starts its API meanwhile)."""
    os.environ[RESOURCES_VARIABLE] = json.dumps(dataclasses.asdict(resources))
    return ServerProcess("aijobs.local.functions_process", wait=False)


@dataclass
class LocalFunctions:
    resources: LocalResources
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    pollers: list[QueuePoller] = field(default_factory=list)
    firer: ScheduleFirer | None = None
    rules: list[RuleFirer] = field(default_factory=list)

    def start(self) -> None:
        session, template = boto3.session.Session(), load_template()
        self._start_pollers(session, template)
        self._start_firer(session)
        self._start_rules(template)

    def _start_pollers(self, session: boto3.session.Session, template: dict[str, Any]) -> None:
        """What Lambda's event source mappings do in AWS, for every SQS event in the template (the worker's priority
        lanes each have theirs)."""
        sqs = session.client("sqs")
        sources = sqs_sources(template)
        widest = {s.function: max(t.max_concurrency or 0 for t in sources if t.function == s.function) for s in sources}
        modules = {s.function: load_function(s.code_dir) for s in sources}  # one module per function
        # What SnapStart's snapshot holds in AWS (what its functions' warm hooks load, every model built): the first
        # jobs pay for neither.
        for module in modules.values():
            if warm := getattr(module, "warm", None):
                snapstart.prepare(warm)
        self.pollers = [QueuePoller(name=source.function, sqs=sqs, queue_url=self.resources.refs[source.queue],
                                    queue_arn=self.resources.arns[source.queue],
                                    handler=getattr(modules[source.function], source.handler),
                                    concurrency=poller_concurrency(source, self.env, widest=widest[source.function]),
                                    batch_size=source.batch_size)
                        for source in sources]
        for poller in self.pollers:
            poller.start()

    def _start_firer(self, session: boto3.session.Session) -> None:
        """What EventBridge Scheduler does in AWS: invoke SchedulerFunction's handler when a schedule is due."""
        self.firer = ScheduleFirer(scheduler=session.client("scheduler"), targets={
            self.resources.arns["SchedulerFunction"]: load_handler("scheduler", "lambda_handler")})
        self.firer.start()

    def _start_rules(self, template: dict[str, Any]) -> None:
        """What EventBridge rules do in AWS (the sweeper's rate(5 minutes)); AIJOBS_LOCAL_SWEEP_INTERVAL_S sets it."""
        override = self.env.get("AIJOBS_LOCAL_SWEEP_INTERVAL_S")
        self.rules = [RuleFirer(name=rule.function, handler=load_handler(rule.code_dir, rule.handler),
                                interval_s=float(override) if override else rule.interval_s)
                      for rule in rate_rules(template)]
        for rule in self.rules:
            rule.start()

    def stop(self) -> None:
        """Every event source at once: each ends its current receive first (up to a second)."""
        sources: list[Any] = [*self.rules, *([self.firer] if self.firer else []), *self.pollers]
        stopping = [threading.Thread(target=source.stop) for source in sources]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


def main() -> None:
    port = int(sys.argv[1])

    def start() -> Any:
        functions = LocalFunctions(resources=LocalResources(**json.loads(os.environ[RESOURCES_VARIABLE])))
        functions.start()
        ready = socket.create_server(("127.0.0.1", port))  # what ServerProcess waits for

        def stop() -> None:
            ready.close()
            functions.stop()

        return stop

    serve_until_stdin_closes(start)


if __name__ == "__main__":
    main()
