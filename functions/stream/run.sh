#!/bin/bash
# StreamFunction's handler: the Lambda Web Adapter's wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this, then
# forwards each function URL request to the port below once AWS_LWA_READINESS_CHECK_PATH answers.
#
# - PYTHONPATH: this function's files (app.py, uvicorn, click) first, then CoreLayer (/opt/python: aijobs and its
#   dependencies, h11 among them), then the runtime's own directory; the runtime's bootstrap, which would add
#   /opt/python, is not what runs here.
# - 127.0.0.1 only: the adapter is the only caller.
# - --timeout-keep-alive 60: longer than the adapter's 4 s pool idle timeout, so an idle connection is always dropped
#   by the adapter, never closed by uvicorn under a request the adapter is sending on it.
# - --forwarded-allow-ips 127.0.0.1: X-Forwarded-Proto from the adapter gives the https scheme of the URL the request
#   came in on (stream_url). X-Forwarded-For is not the caller's address (a function URL keeps only its leftmost,
#   caller-chosen value): the app takes the address from the request context the adapter sends.
# - no access log from uvicorn: the app writes one structured line per request (aijobs.api.middleware).
set -euo pipefail

export PYTHONPATH="${LAMBDA_TASK_ROOT:-$(dirname "$0")}:/opt/python${LAMBDA_RUNTIME_DIR:+:$LAMBDA_RUNTIME_DIR}${PYTHONPATH:+:$PYTHONPATH}"
exec python -m uvicorn app:app \
    --host 127.0.0.1 --port "${AWS_LWA_PORT:-8000}" \
    --http h11 --loop asyncio --lifespan off \
    --timeout-keep-alive 60 \
    --proxy-headers --forwarded-allow-ips 127.0.0.1 \
    --no-access-log --no-server-header --log-level warning
