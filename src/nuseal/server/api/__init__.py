"""HTTP routers (FastAPI), thin: read the request, call a service, map the result to a response."""
