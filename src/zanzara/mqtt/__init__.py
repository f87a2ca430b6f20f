"""The MQTT wire format, pure: enums, properties, packets, codec, topic rules.

Nothing in this package does I/O, touches asyncio or reads the clock.
"""
