/*!
 * djwire.js: the browser client of djwire (WebSockets for Django).
 *
 *   const socket = djwire.connect("/ws/chat/lobby/", {
 *     rejoin(socket) { socket.send({type: "join"}); },   // after every reconnect
 *   });
 *   socket.on("message", (data) => console.log(data));  // parsed JSON
 *   socket.send({type: "message", text: "hi"});        // queued while offline
 *
 * - Reconnects by itself: exponential backoff with jitter and a cap, so a server
 *   restart does not bring every client back in the same millisecond.
 * - Sends and receives JSON (set json: false for raw strings and binary data).
 * - Events: "open", "message", "close", "reconnecting", "error", "state".
 * - djwire.showStatus(socket, element) keeps a status badge up to date.
 * - Messages sent while disconnected wait in a bounded queue and go out, in order,
 *   after the next open (after the rejoin hook, so a page resubscribes first).
 *
 * No dependencies, no build step: a plain script (sets window.djwire) that also
 * works as a CommonJS module.
 */
(function (root, factory) {
  "use strict";
  if (typeof module === "object" && module.exports) {
    module.exports = factory(root);
  } else {
    root.djwire = factory(root);
  }
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var DEFAULTS = {
    minDelay: 500, // ms before the first reconnect attempt
    maxDelay: 10000, // cap on the wait between attempts
    factor: 2, // each failed attempt multiplies the wait
    jitter: 0.5, // up to this fraction of each wait is taken off at random
    stableAfter: 5000, // ms a connection must stay open before backoff resets
    connectTimeout: 10000, // an opening handshake slower than this is abandoned
    maxRetries: Infinity, // attempts in a row before giving up ("closed")
    maxQueue: 100, // messages kept while disconnected; send() refuses more
    json: true, // JSON.stringify on send, JSON.parse on receive
    protocols: undefined, // WebSocket subprotocols
    binaryType: "arraybuffer",
    rejoin: null, // function (socket): called on each reconnect, before the queue
    shouldReconnect: null, // function (closeEvent) -> boolean; default: always
    WebSocket: null, // the WebSocket constructor (tests inject a fake)
  };

  var EVENTS = ["open", "message", "close", "reconnecting", "error", "state"];

  /** ws:// or wss:// URL for a path, relative to the page (same host, same scheme). */
  function resolveUrl(url) {
    if (typeof url === "function") {
      url = url();
    }
    if (/^wss?:\/\//i.test(url)) {
      return url;
    }
    var location = root.location;
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new URL(url, scheme + "//" + location.host + location.pathname).href;
  }

  /**
   * The wait before reconnect attempt ``attempt`` (1, 2, ...): minDelay * factor^(n-1),
   * capped at maxDelay, minus a random part of up to ``jitter`` of it.
   */
  function backoffDelay(attempt, options, random) {
    var base = options.minDelay * Math.pow(options.factor, Math.max(0, attempt - 1));
    base = Math.min(options.maxDelay, base);
    return Math.round(base * (1 - options.jitter * (random || Math.random)()));
  }

  function Socket(url, options) {
    if (!(this instanceof Socket)) {
      return new Socket(url, options);
    }
    this.url = url;
    this.options = {};
    var key;
    for (key in DEFAULTS) {
      this.options[key] = DEFAULTS[key];
    }
    for (key in options || {}) {
      if (!(key in DEFAULTS) && EVENTS.indexOf(key.replace(/^on/, "").toLowerCase()) < 0) {
        throw new Error("djwire: unknown option " + key);
      }
      this.options[key] = options[key];
    }
    this.state = "connecting"; // connecting | open | reconnecting | closed
    this.attempt = 0; // failed attempts in a row
    this.everOpened = false;
    this.queue = [];
    this._ws = null;
    this._listeners = {};
    this._timer = null;
    this._connectTimer = null;
    this._stableTimer = null;
    this._closedByUser = false;
    // Callbacks given as options: onOpen, onMessage, onClose, onReconnecting, ...
    for (var i = 0; i < EVENTS.length; i++) {
      var name = "on" + EVENTS[i].charAt(0).toUpperCase() + EVENTS[i].slice(1);
      if (typeof this.options[name] === "function") {
        this.on(EVENTS[i], this.options[name]);
      }
    }
    var self = this;
    this._onOnline = function () {
      // Back online: do not sit out the rest of a long backoff wait.
      if (self.state === "reconnecting") {
        self.reconnect();
      }
    };
    if (root.addEventListener) {
      root.addEventListener("online", this._onOnline);
    }
    this._open();
  }

  Socket.prototype.on = function (event, callback) {
    if (EVENTS.indexOf(event) < 0) {
      throw new Error("djwire: unknown event " + event + " (one of " + EVENTS.join(", ") + ")");
    }
    (this._listeners[event] = this._listeners[event] || []).push(callback);
    var self = this;
    return function off() {
      self.off(event, callback);
    };
  };

  Socket.prototype.off = function (event, callback) {
    var list = this._listeners[event] || [];
    var index = list.indexOf(callback);
    if (index >= 0) {
      list.splice(index, 1);
    }
  };

  Socket.prototype._emit = function (event, detail) {
    var list = (this._listeners[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try {
        list[i].call(this, detail, this);
      } catch (error) {
        // One broken listener must not stop the others or the reconnect logic.
        if (root.console) {
          root.console.error("djwire: a " + event + " listener failed", error);
        }
      }
    }
  };

  Socket.prototype._setState = function (state) {
    if (this.state !== state) {
      this.state = state;
      this._emit("state", state);
    }
  };

  /**
   * Send ``data`` (JSON-encoded unless json: false). Sent at once when open, else
   * queued. Returns false when the queue is full or the socket was closed with
   * close(): the message was NOT sent and will not be.
   */
  Socket.prototype.send = function (data) {
    if (this._closedByUser) {
      return false;
    }
    var frame = this.options.json ? JSON.stringify(data) : data;
    if (this.state === "open" && this._ws && this._ws.readyState === 1) {
      this._ws.send(frame);
      return true;
    }
    if (this.queue.length >= this.options.maxQueue) {
      return false;
    }
    this.queue.push(frame);
    return true;
  };

  /** Close for good (no reconnect). Queued messages are dropped. */
  Socket.prototype.close = function (code, reason) {
    this._closedByUser = true;
    this.queue = [];
    this._clearTimers();
    if (root.removeEventListener) {
      root.removeEventListener("online", this._onOnline);
    }
    var ws = this._ws;
    this._ws = null;
    this._setState("closed");
    if (ws && ws.readyState < 2) {
      ws.close(code || 1000, reason || "");
    }
  };

  /** Reconnect now, skipping any backoff wait (also drops a live connection). */
  Socket.prototype.reconnect = function () {
    if (this._closedByUser) {
      return;
    }
    this._clearTimers();
    if (this._ws) {
      var ws = this._ws;
      this._ws = null;
      this._detach(ws);
      if (ws.readyState < 2) {
        ws.close(1000, "reconnect");
      }
    }
    this._open();
  };

  Socket.prototype._clearTimers = function () {
    clearTimeout(this._timer);
    clearTimeout(this._connectTimer);
    clearTimeout(this._stableTimer);
    this._timer = this._connectTimer = this._stableTimer = null;
  };

  Socket.prototype._detach = function (ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  };

  Socket.prototype._open = function () {
    var self = this;
    var Impl = this.options.WebSocket || root.WebSocket;
    var ws;
    try {
      ws = new Impl(resolveUrl(this.url), this.options.protocols);
    } catch (error) {
      // A malformed URL throws at once; that will not get better by retrying.
      this._emit("error", error);
      this._closedByUser = true;
      this._setState("closed");
      this._emit("close", { code: 1006, reason: String(error), wasClean: false, willReconnect: false });
      return;
    }
    ws.binaryType = this.options.binaryType;
    this._ws = ws;
    this._setState("connecting");
    this._connectTimer = setTimeout(function () {
      // The handshake hangs (a half-open network): give up on this attempt.
      if (ws.readyState === 0) {
        ws.close();
      }
    }, this.options.connectTimeout);

    ws.onopen = function () {
      clearTimeout(self._connectTimer);
      var reconnected = self.everOpened;
      self.everOpened = true;
      self._setState("open");
      self._stableTimer = setTimeout(function () {
        self.attempt = 0;
      }, self.options.stableAfter);
      if (reconnected && typeof self.options.rejoin === "function") {
        try {
          self.options.rejoin(self);
        } catch (error) {
          self._emit("error", error);
        }
      }
      self._flush();
      self._emit("open", { reconnected: reconnected, attempt: self.attempt });
    };

    ws.onmessage = function (event) {
      var data = event.data;
      if (self.options.json && typeof data === "string") {
        try {
          data = JSON.parse(data);
        } catch (error) {
          self._emit("error", new Error("djwire: a message was not valid JSON: " + error.message));
          return;
        }
      }
      self._emit("message", data);
    };

    ws.onerror = function (event) {
      // Always followed by a close event, which decides what happens next.
      self._emit("error", event);
    };

    ws.onclose = function (event) {
      self._detach(ws);
      clearTimeout(self._connectTimer);
      clearTimeout(self._stableTimer);
      if (self._ws === ws) {
        self._ws = null;
      }
      var retry = !self._closedByUser;
      if (retry && typeof self.options.shouldReconnect === "function") {
        retry = !!self.options.shouldReconnect(event);
      }
      if (retry && self.attempt >= self.options.maxRetries) {
        retry = false;
      }
      self._emit("close", {
        code: event.code,
        reason: event.reason,
        wasClean: event.wasClean,
        willReconnect: retry,
      });
      if (retry) {
        self._scheduleReconnect();
      } else if (!self._closedByUser) {
        self._closedByUser = true;
        self.queue = [];
        self._setState("closed");
      }
    };
  };

  Socket.prototype._scheduleReconnect = function () {
    var self = this;
    this.attempt += 1;
    var delay = backoffDelay(this.attempt, this.options);
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this.attempt, delay: delay });
    this._timer = setTimeout(function () {
      self._timer = null;
      self._open();
    }, delay);
  };

  Socket.prototype._flush = function () {
    while (this.queue.length && this._ws && this._ws.readyState === 1) {
      this._ws.send(this.queue.shift());
    }
  };

  var STATUS_TEXT = {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting in {seconds} s…",
    closed: "Offline",
  };

  /**
   * Keep ``element`` showing the socket's state: its text, and a ``data-state``
   * attribute (connecting | open | reconnecting | closed) for CSS. ``text``
   * overrides the wording per state; "{seconds}" is the wait before the next try.
   */
  function showStatus(socket, element, text) {
    var words = {};
    for (var key in STATUS_TEXT) {
      words[key] = (text && text[key]) || STATUS_TEXT[key];
    }
    function show(state, seconds) {
      element.setAttribute("data-state", state);
      element.textContent = words[state].replace("{seconds}", seconds);
    }
    socket.on("state", function (state) {
      if (state !== "reconnecting") {
        show(state, 0);
      }
    });
    socket.on("reconnecting", function (info) {
      show("reconnecting", Math.ceil(info.delay / 1000));
    });
    show(socket.state, 0);
  }

  return {
    Socket: Socket,
    showStatus: showStatus,
    connect: function (url, options) {
      return new Socket(url, options);
    },
    backoffDelay: backoffDelay,
    defaults: DEFAULTS,
    version: "1",
  };
});
