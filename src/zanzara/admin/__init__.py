"""The operator's HTTP surface: the admin API (``app.py``), served in the broker's loop (``server.py``)."""
