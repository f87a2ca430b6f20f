"""Transports: asyncio shells that move bytes between sockets and the sans-I/O core."""
