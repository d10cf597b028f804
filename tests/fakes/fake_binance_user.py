"""User data on the fake Binance, over the routes Binance serves it on since 2026.

- **Spot: the WebSocket API only** (``/ws-api/v3``). A client logs the connection on with
  ``session.logon`` (``apiKey``, ``timestamp`` and a ``signature`` of ``apiKey=...&timestamp=...``:
  HMAC-SHA256 in hex, or Ed25519 in base64), then ``userDataStream.subscribe``; events arrive on the
  same connection as ``{"subscriptionId": n, "event": {...}}``. The REST listen-key endpoints
  (``/api/v3/userDataStream``) answer HTTP 410, as Binance's have since 2026-02-20.
- **USDT-M futures: listen keys, on the ``/private`` route.** A key comes from REST
  (``POST /fapi/v1/listenKey``, HMAC keys) or from the futures WebSocket API (``/ws-fapi/v1``:
  ``session.logon``, Ed25519 keys only, then ``userDataStream.start``); events are pushed raw on
  ``/private?listenKey=<key>`` (or ``/private/ws?listenKey=<key>``). A key can be expired mid-run
  (``listenKeyExpired`` is pushed, and the key stops working), as Binance expires them.

WebSocket API answers have Binance's layout: ``{"id", "status": 200, "result", "rateLimits"}``, or
``{"id", "status", "error": {"code", "msg"}}``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from http import HTTPStatus

from tests.fakes.fake_binance_account import FUTURES, SPOT, BinanceError, FakeAccount

DEFAULT_RECV_WINDOW_MS = 5000
LISTEN_KEY_MISSING = BinanceError(HTTPStatus.BAD_REQUEST, -1125, "This listenKey does not exist.")
NOT_LOGGED_ON = BinanceError(HTTPStatus.UNAUTHORIZED, -1002, "You are not authorized to execute this request.")


def check_timestamp(params: dict, now_ms: int) -> None:
    """A signed request's ``timestamp`` within its ``recvWindow`` of the server's clock, as Binance checks it."""
    try:
        timestamp = int(params["timestamp"])
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except KeyError:
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
    except (TypeError, ValueError):
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1100, "Illegal characters found in parameter 'timestamp'.") from None
    if not -window <= timestamp - now_ms <= 1000:
        raise BinanceError(HTTPStatus.BAD_REQUEST, -1021, "Timestamp for this request is outside of the recvWindow.")


@dataclass
class Session:
    """One WebSocket API connection's state."""

    market: str
    connected_ms: int
    account: FakeAccount | None = None  # once logged on
    subscription_id: int | None = None  # spot: the user data stream subscribed to


class UserData:
    """Listen keys, WebSocket API sessions and the answers to their requests, for one fake."""

    def __init__(self, fake):
        self.fake = fake
        self.listen_keys: dict[str, str] = {}  # live listen key -> market
        self._next_subscription = 0

    # -- listen keys ---------------------------------------------------------------------------

    def new_listen_key(self, market: str) -> str:
        key = secrets.token_hex(32)
        self.listen_keys[key] = market
        return key

    def keep_listen_key(self, key: str | None) -> None:
        if key not in self.listen_keys:
            raise LISTEN_KEY_MISSING

    def close_listen_key(self, key: str | None) -> None:
        self.keep_listen_key(key)
        del self.listen_keys[key]

    def expire_listen_keys(self, market: str = FUTURES) -> list[str]:
        """Expire every live listen key of ``market``; returns them (the streams push ``listenKeyExpired``)."""
        expired = [key for key, key_market in self.listen_keys.items() if key_market == market]
        for key in expired:
            del self.listen_keys[key]
        return expired

    # -- the WebSocket API ---------------------------------------------------------------------

    def answer(self, session: Session, text: str) -> dict:
        """The answer to one WebSocket API request, in Binance's layout."""
        try:
            request = json.loads(text)
            request_id, method, params = request["id"], request["method"], request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
        try:
            handler = WS_API_METHODS[session.market].get(method)
            if handler is None:
                raise BinanceError(HTTPStatus.BAD_REQUEST, -1100, f"Unknown method '{method}'.")
            result = getattr(self, handler)(session, params)
        except BinanceError as error:
            return {"id": request_id, "status": int(error.status), "error": error.body}
        return {"id": request_id, "status": 200, "result": result, "rateLimits": []}

    def _logon(self, session: Session, params: dict) -> dict:
        account = self.fake.account
        if account is None or params.get("apiKey") != account.api_key:
            raise BinanceError(HTTPStatus.UNAUTHORIZED, -2015, "Invalid API-key, IP, or permissions for action.")
        if session.market == FUTURES and not account.is_ed25519:
            # Binance's futures WebSocket API logs on Ed25519 keys only (HMAC keys take a REST listen key).
            raise BinanceError(HTTPStatus.BAD_REQUEST, -4056, "HMAC_SHA256 API key is not supported.")
        signature = str(params.get("signature", ""))
        payload = "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "signature")
        if not signature or not account.verify(payload, signature):
            raise BinanceError(HTTPStatus.BAD_REQUEST, -1022, "Signature for this request is not valid.")
        now = self.fake.clock_ms()
        check_timestamp(params, now)
        session.account = account
        return self._status(session, params)

    def _status(self, session: Session, params: dict) -> dict:
        now = self.fake.clock_ms()
        return {"apiKey": session.account.api_key if session.account else None, "authorizedSince": now if session.account else None,
                "connectedSince": session.connected_ms, "returnRateLimits": False, "serverTime": now,
                "userDataStream": session.subscription_id is not None}

    def _logout(self, session: Session, params: dict) -> dict:
        session.account, session.subscription_id = None, None
        return self._status(session, params)

    def _subscribe(self, session: Session, params: dict) -> dict:
        if session.account is None:
            raise NOT_LOGGED_ON
        if session.subscription_id is None:
            session.subscription_id = self._next_subscription
            self._next_subscription += 1
        return {"subscriptionId": session.subscription_id}

    def _unsubscribe(self, session: Session, params: dict) -> dict:
        session.subscription_id = None
        return {}

    def _start(self, session: Session, params: dict) -> dict:
        if session.account is None:
            raise NOT_LOGGED_ON
        return {"listenKey": self.new_listen_key(FUTURES)}

    def _ping(self, session: Session, params: dict) -> dict:
        self.keep_listen_key(params.get("listenKey"))
        return {"listenKey": params["listenKey"]}

    def _stop(self, session: Session, params: dict) -> dict:
        self.close_listen_key(params.get("listenKey"))
        return {}


WS_API_METHODS = {
    SPOT: {"session.logon": "_logon", "session.status": "_status", "session.logout": "_logout",
           "userDataStream.subscribe": "_subscribe", "userDataStream.unsubscribe": "_unsubscribe"},
    FUTURES: {"session.logon": "_logon", "session.status": "_status", "session.logout": "_logout",
              "userDataStream.start": "_start", "userDataStream.ping": "_ping", "userDataStream.stop": "_stop"},
}
