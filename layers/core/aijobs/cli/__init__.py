"""The ``aijobs`` command line (``aijobs --help``): a client of the API over HTTP.

It needs click, rich and httpx-sse, which the Lambda layer does not ship: no Lambda code imports this package.
"""
