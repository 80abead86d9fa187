"""Server use cases, free of any web framework: each function takes a :class:`~.context.ServiceContext`.

Routers (``server.api``) and the admin CLI call these; they return frozen result objects and raise
:class:`~.errors.DomainError` subclasses that one mapping turns into HTTP statuses or ``error: ...`` lines.
"""
