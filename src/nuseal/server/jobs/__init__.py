"""Background jobs on huey: the queue and its tasks (``queue``), the per-process runtime the tasks run with
(``runtime``) and the workers that execute them inside ``nuseal serve`` or ``nuseal worker`` (``workers``)."""
