"""The local development stack: moto, the fake model, the API under uvicorn, SQS pollers. Not shipped."""
