"""zanzara: an MQTT 3.1/3.1.1/5.0 broker in Python, built for push notifications.

The embedded API is re-exported here; nothing else is public.
"""

from .config import Config, ListenerConfig, MqttConfig, load_config
from .errors import ConfigError, ProtocolError, ZanzaraError
from .events import (
    ClientConnected,
    ClientDisconnected,
    Delivered,
    Event,
    Published,
    Subscribed,
    Unsubscribed,
)
from .hooks import Authenticator, Authorizer, ClientInfo, ConnectRequest
from .message import Message
from .mqtt.enums import ReasonCode
from .mqtt.packets import Subscription
from .mqtt.properties import Properties
from .server import Broker, run

__all__ = [
    "Authenticator",
    "Authorizer",
    "Broker",
    "ClientConnected",
    "ClientDisconnected",
    "ClientInfo",
    "Config",
    "ConfigError",
    "ConnectRequest",
    "Delivered",
    "Event",
    "ListenerConfig",
    "Message",
    "MqttConfig",
    "Properties",
    "ProtocolError",
    "Published",
    "ReasonCode",
    "Subscribed",
    "Subscription",
    "Unsubscribed",
    "ZanzaraError",
    "load_config",
    "run",
]
