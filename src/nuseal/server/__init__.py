"""The nuseal NuGet V3 feed server (``nuseal serve``): settings, database, blob storage, services and HTTP API.

Layer 4, beside ``nuseal.cli`` and independent of it. FastAPI and Starlette are imported only by ``server.app`` and
``server.api``; services, storage, database and jobs stay framework-free (import-linter contracts).
"""
