// The liveblog page: new and edited posts arrive over the socket and are put in
// place; the status badge shows the connection.
(function () {
  "use strict";
  var posts = document.getElementById("posts");
  var status = document.getElementById("status");
  var empty = posts.querySelector(".empty");
  // The server time this page is up to date with. A reconnecting socket sends it
  // (?since=) and the server replays what changed meanwhile.
  var since = posts.getAttribute("data-since");

  function streamUrl() {
    return posts.getAttribute("data-stream") + "?since=" + encodeURIComponent(since);
  }

  // The server renders times in UTC; show them in the reader's own time zone.
  function localTimes(node) {
    var times = node.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var date = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(date)) {
        times[i].textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      }
    }
  }

  function postNode(html) {
    var template = document.createElement("template");
    // Rendered by the server with the page's own template (Django escapes it).
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function newerThan(a, b) {
    var ta = Date.parse(a.getAttribute("data-created"));
    var tb = Date.parse(b.getAttribute("data-created"));
    return ta > tb || (ta === tb && Number(a.getAttribute("data-id")) > Number(b.getAttribute("data-id")));
  }

  function flash(node) {
    node.classList.add("flash");
    setTimeout(function () {
      node.classList.remove("flash");
    }, 2500);
  }

  function showPost(message) {
    var node = postNode(message.html);
    localTimes(node);
    var existing = document.getElementById(node.id);
    if (existing) {
      existing.replaceWith(node);
    } else {
      // Newest first, by creation time (a post may be back-dated).
      var before = null;
      var list = posts.querySelectorAll(".post");
      for (var i = 0; i < list.length; i++) {
        if (newerThan(node, list[i])) {
          before = list[i];
          break;
        }
      }
      posts.insertBefore(node, before || empty);
    }
    flash(node);
    if (Date.parse(message.updated) > Date.parse(since)) {
      since = message.updated;
    }
    empty.hidden = true;
  }

  function removePost(id) {
    var node = document.getElementById("post-" + id);
    if (node) {
      node.remove();
    }
    empty.hidden = posts.querySelector(".post") !== null;
  }

  localTimes(posts);
  var socket = djwire.connect(streamUrl);
  djwire.showStatus(socket, status, { open: "Live" });
  socket.on("message", function (message) {
    if (message.type === "post") {
      showPost(message);
    } else if (message.type === "deleted") {
      removePost(message.id);
    } else if (message.type === "reload") {
      window.location.reload();
    }
  });
  window.liveblogSocket = socket; // for the browser console (and the tests)
})();
