// The chat page: messages are inserted as text (textContent), never as HTML, so
// whatever people type is shown exactly as typed.
(function () {
  "use strict";
  var chat = document.getElementById("chat");
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var errorBox = document.getElementById("chat-error");
  var status = document.getElementById("status");
  var youNode = document.getElementById("you");
  var you = chat.getAttribute("data-you");
  var pending = {}; // client_id -> the grey "sending" line
  var nextId = 1;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function timeOf(iso) {
    var date = new Date(iso);
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function line(author, text, mine) {
    var item = document.createElement("li");
    item.className = "message" + (mine ? " mine" : "");
    var meta = document.createElement("div");
    meta.className = "meta";
    var who = document.createElement("span");
    who.className = "author";
    who.textContent = author;
    meta.appendChild(who);
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    item.appendChild(meta);
    item.appendChild(body);
    return item;
  }

  function render(message, clientId) {
    var id = "message-" + message.id;
    if (clientId && pending[clientId]) {
      pending[clientId].remove();
      delete pending[clientId];
    }
    if (document.getElementById(id)) {
      return; // already shown: the history is sent again after a reconnect
    }
    var stick = nearBottom();
    var item = line(message.author, message.text, message.author === you);
    item.id = id;
    item.setAttribute("data-id", message.id);
    if (!message.authenticated) {
      var badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "guest";
      item.querySelector(".meta").appendChild(badge);
    }
    var time = document.createElement("time");
    time.dateTime = message.sent;
    time.textContent = timeOf(message.sent);
    item.querySelector(".meta").appendChild(time);
    // In id order: history replayed after a reconnect fills gaps in place.
    var before = null;
    var shown = list.querySelectorAll(".message[data-id]");
    for (var i = shown.length - 1; i >= 0; i--) {
      if (Number(shown[i].getAttribute("data-id")) < message.id) {
        before = shown[i].nextSibling;
        break;
      }
      before = shown[i];
    }
    list.insertBefore(item, before);
    if (stick || message.author === you) {
      list.scrollTop = list.scrollHeight;
    }
  }

  var socket = djwire.connect(chat.getAttribute("data-stream"));
  djwire.showStatus(socket, status);
  socket.on("message", function (data) {
    if (data.type === "welcome") {
      you = data.name;
      youNode.textContent = data.name;
      input.maxLength = data.max_length;
      data.messages.forEach(function (message) {
        render(message);
      });
      list.scrollTop = list.scrollHeight;
    } else if (data.type === "message") {
      render(data.message, data.client_id);
    } else if (data.type === "error") {
      if (data.client_id && pending[data.client_id]) {
        pending[data.client_id].remove();
        delete pending[data.client_id];
      }
      showError(data.error);
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) {
      return;
    }
    var clientId = "c" + nextId++ + "-" + Date.now().toString(36);
    if (!socket.send({ type: "message", text: text, client_id: clientId })) {
      showError("Not connected, and too many messages are waiting: try again in a moment.");
      return;
    }
    showError("");
    // Shown at once, greyed out, until the server sends it back to everyone.
    var item = line(you, text, true);
    item.classList.add("pending");
    pending[clientId] = item;
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    input.value = "";
  });
  window.chatSocket = socket; // for the browser console (and the tests)
})();
