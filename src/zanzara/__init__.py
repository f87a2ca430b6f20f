"""zanzara: an MQTT 3.1/3.1.1/5.0 broker in Python, built for push notifications.

The embedded API is re-exported here; nothing else is public.
"""

from .auth.scram import ScramCredentials, ScramSha256
from .broker import Broker
from .config import Config, ListenerConfig, MqttConfig, load_config
from .core import PublishResult
from .errors import ConfigError, InvalidArgument, ProtocolError, StoreError, StoreInUse, ZanzaraError
from .events import (
    ClientConnected,
    ClientDisconnected,
    Delivered,
    DisconnectReason,
    Dropped,
    Event,
    Published,
    Subscribed,
    Unsubscribed,
)
from .hooks import (
    Authenticator,
    Authorizer,
    AuthResult,
    AuthStep,
    ClientInfo,
    ConnectRequest,
    EnhancedAuthenticator,
)
from .message import Message
from .metrics import BrokerCollector, BrokerMetrics
from .mqtt.enums import ReasonCode
from .mqtt.packets import Subscription
from .mqtt.properties import Properties
from .server import run
from .storage import DeliveryStatus, Receipt

__all__ = [
    "AuthResult",
    "AuthStep",
    "Authenticator",
    "Authorizer",
    "Broker",
    "BrokerCollector",
    "BrokerMetrics",
    "ClientConnected",
    "ClientDisconnected",
    "ClientInfo",
    "Config",
    "ConfigError",
    "ConnectRequest",
    "Delivered",
    "DeliveryStatus",
    "DisconnectReason",
    "Dropped",
    "EnhancedAuthenticator",
    "Event",
    "InvalidArgument",
    "ListenerConfig",
    "Message",
    "MqttConfig",
    "Properties",
    "ProtocolError",
    "PublishResult",
    "Published",
    "ReasonCode",
    "Receipt",
    "ScramCredentials",
    "ScramSha256",
    "StoreError",
    "StoreInUse",
    "Subscribed",
    "Subscription",
    "Unsubscribed",
    "ZanzaraError",
    "load_config",
    "run",
]
