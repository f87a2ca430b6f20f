/*
 * MQTT over WebSocket for a copy of ../shared/bench/loadgen/mqttload.c (RFC 6455; MQTT 5.0 section 6).
 *
 * bench/ws.sh copies the shared load generator to a scratch directory, renames its conn_flush()
 * and parse_stream() to conn_flush_raw() and mqtt_parse_stream(), adds the fields below to its
 * conn_t and #includes this file just before conn_readable().  With ZB_WS set (its value is the
 * HTTP path, e.g. /mqtt) every connection opens with a WebSocket handshake (subprotocol "mqtt"),
 * sends what one flush holds as one masked binary frame, and unwraps the broker's frames before
 * the MQTT parser sees them; without ZB_WS it is the unmodified TCP load generator.
 *
 * The fields added to conn_t:
 *   int ws_state;      WS_OFF, WS_HANDSHAKE (request sent, waiting for 101) or WS_OPEN
 *   size_t ws_framed;  bytes at the front of wb that are already framed (left by a short write)
 *   buf_t ws_in;       MQTT bytes unwrapped from frames, not yet parsed
 */

enum { WS_OFF, WS_HANDSHAKE, WS_OPEN };

static const char *ws_path(void) {
  static int init;
  static const char *path;
  if (!init) { path = getenv("ZB_WS"); if (path && !*path) path = NULL; init = 1; }
  return path;
}

/* Opens the WebSocket instead of sending CONNECT; CONNECT follows the 101 response. */
static void ws_handshake(conn_t *c) {
  char req[512];
  /* A fixed key: the server only has to echo its hash, and nothing here checks the answer's. */
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                   ws_path(), o_host, o_port);
  buf_free(&c->ws_in);
  buf_reserve(&c->wb, (size_t)n);
  memcpy(c->wb.d + c->wb.len, req, (size_t)n);
  c->wb.len += (size_t)n;
  c->ws_framed = 0;
  c->ws_state = WS_HANDSHAKE;
}

/* Wraps the unframed tail of wb in one masked binary frame [RFC 6455 5.2, 5.3]. */
static void ws_frame(conn_t *c) {
  size_t pending = buf_pending(&c->wb);
  if (c->ws_state != WS_OPEN) { c->ws_framed = pending; return; } /* the handshake goes raw */
  size_t n = pending - c->ws_framed;
  if (!n) return;
  uint8_t hdr[14];
  size_t h = 0;
  hdr[h++] = 0x82; /* FIN, binary */
  if (n < 126) {
    hdr[h++] = 0x80 | (uint8_t)n;
  } else if (n <= 0xffff) {
    hdr[h++] = 0x80 | 126; hdr[h++] = (uint8_t)(n >> 8); hdr[h++] = (uint8_t)n;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int k = 7; k >= 0; k--) hdr[h++] = (uint8_t)((uint64_t)n >> (8 * k));
  }
  /* Clients must mask [RFC 6455 5.3]; the key varies per frame so the server's unmasking is real work. */
  static uint32_t seed = 0x9e3779b9u;
  seed = seed * 1664525u + 1013904223u;
  uint8_t key[4];
  memcpy(key, &seed, 4);
  memcpy(hdr + h, key, 4); h += 4;
  buf_reserve(&c->wb, h);
  uint8_t *start = c->wb.d + c->wb.off + c->ws_framed;
  memmove(start + h, start, n);
  memcpy(start, hdr, h);
  uint8_t *p = start + h;
  size_t i = 0;
  uint32_t k32; memcpy(&k32, key, 4);
  for (; i + 4 <= n; i += 4) { uint32_t v; memcpy(&v, p + i, 4); v ^= k32; memcpy(p + i, &v, 4); }
  for (; i < n; i++) p[i] ^= key[i & 3];
  c->wb.len += h;
  c->ws_framed = buf_pending(&c->wb);
}

static void conn_flush(conn_t *c) {
  if (!ws_path()) { conn_flush_raw(c); return; }
  ws_frame(c);
  conn_flush_raw(c);
  /* What is left after a short write is framed already; anything appended later is not. */
  c->ws_framed = c->fd >= 0 ? buf_pending(&c->wb) : 0;
}

/* The broker's frames -> MQTT bytes in ws_in, parsed as the TCP stream would be.  Returns the
   number of bytes of d consumed (complete frames, or the whole handshake response). */
static size_t parse_stream(conn_t *c, const uint8_t *d, size_t n) {
  if (!ws_path()) return mqtt_parse_stream(c, d, n);
  size_t off = 0;
  if (c->ws_state == WS_HANDSHAKE) {
    const uint8_t *end = memmem(d, n, "\r\n\r\n", 4);
    if (!end) return 0;
    if (n < 12 || memcmp(d + 9, "101", 3) != 0) {
      fprintf(stderr, "websocket handshake refused: %.*s\n", (int)(end - d), (const char *)d);
      errors++;
      conn_close(c, 1);
      return n;
    }
    off = (size_t)(end - d) + 4;
    c->ws_state = WS_OPEN;
    mq_connect(c);
  }
  while (c->fd >= 0 && n - off >= 2) {
    uint8_t op = d[off] & 0x0f;
    uint64_t len = d[off + 1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
      if (n - off < 4) break;
      len = (uint64_t)d[off + 2] << 8 | d[off + 3]; h = 4;
    } else if (len == 127) {
      if (n - off < 10) break;
      len = 0;
      for (int k = 0; k < 8; k++) len = len << 8 | d[off + 2 + k];
      h = 10;
    }
    if (d[off + 1] & 0x80) { fprintf(stderr, "masked frame from the server\n"); errors++; conn_close(c, 1); return n; }
    if (n - off - h < len) break;
    const uint8_t *payload = d + off + h;
    off += h + (size_t)len;
    if (op == 0x8) { conn_close(c, 1); return n; } /* close */
    if (op == 0x9 || op == 0xA) continue; /* ping/pong: the broker does not ping in these runs */
    buf_reserve(&c->ws_in, (size_t)len);
    memcpy(c->ws_in.d + c->ws_in.len, payload, (size_t)len);
    c->ws_in.len += (size_t)len;
  }
  if (c->fd >= 0 && buf_pending(&c->ws_in)) {
    size_t used = mqtt_parse_stream(c, c->ws_in.d + c->ws_in.off, buf_pending(&c->ws_in));
    if (c->fd >= 0) {
      c->ws_in.off += used;
      if (c->ws_in.off == c->ws_in.len) c->ws_in.off = c->ws_in.len = 0;
    }
  }
  return off;
}
