"""The analyst console (``sentistream console``): live view, drift, the labelling queue, the adapters
registry and search, as a server-rendered web application on the daemon's database. It imports
``schemas`` and ``models`` only; it meets the daemon and the trainer in Postgres."""
