"""aijobs from the official openai SDK: background mode, a stream resumed after a drop, cancel.

    AIJOBS_URL=http://127.0.0.1:8000 AIJOBS_API_KEY=aj_dev_... python examples/openai_sdk.py
"""

import os
import time

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("AIJOBS_URL", "http://127.0.0.1:8000") + "/v1",
                api_key=os.environ["AIJOBS_API_KEY"])

# Background mode: the id at once, the result when it is ready (the job runs on aijobs' worker).
response = client.responses.create(model="fake-model", input="Summarise: the quarterly report", background=True)
while response.status in ("queued", "in_progress"):
    time.sleep(0.5)
    response = client.responses.retrieve(response.id)
print(response.status, response.output_text, response.usage.output_tokens if response.usage else None)

# Streaming: print the text as it is made; after a dropped connection, resume after the last event seen.
last = -1
stream = client.responses.create(model="fake-model", input="Tell me more [[tokens=20]] [[token_ms=50]]",
                                 stream=True, background=True)
for event in stream:
    last = event.sequence_number
    if event.type == "response.created":
        response_id = event.response.id
    if event.type == "response.output_text.delta":
        print(event.delta, end="", flush=True)
    if last == 8:  # pretend the connection dropped here
        stream.close()
        break
for event in client.responses.retrieve(response_id, stream=True, starting_after=last):
    if event.type == "response.output_text.delta":
        print(event.delta, end="", flush=True)
print()

# The stream helper replays a stored response and gives the final object.
with client.responses.stream(response_id=response_id) as replay:
    print("replayed:", replay.get_final_response().output_text)

# Cancel a background response.
slow = client.responses.create(model="fake-model", input="a long one [[delay_ms=5000]]", background=True)
print(client.responses.cancel(slow.id).status)
