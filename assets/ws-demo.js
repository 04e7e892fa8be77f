// ws-demo.js — the script of ws-demo.html (a file, never inline: the default CSP forbids
// inline scripts). Opens a WebSocket to the server that served the page, subscribes to a room
// and runs the `status` action, writing each step into <pre id="log">:
//   "open", "subscribed room:lobby", "status <server name>", "message <channel> …",
//   "error <message>", "closed <code>".
// Query string (for tests): ?ws=<host[:port]> connects elsewhere, ?channel=room:<name>.
(function () {
    "use strict";

    var logEl = document.getElementById("log");
    var stateEl = document.getElementById("state");

    function line(text) {
        logEl.textContent += text + "\n";
    }

    function state(text) {
        stateEl.textContent = text;
        document.body.setAttribute("data-state", text);
    }

    var params = new URLSearchParams(window.location.search);
    // Only a bare host[:port] is accepted, so the query string cannot smuggle a path or scheme.
    var target = params.get("ws");
    if (!target || !/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(target)) target = window.location.host;
    var channel = params.get("channel");
    if (!channel || !/^room:[A-Za-z0-9-]{1,64}$/.test(channel)) channel = "room:lobby";
    document.getElementById("channel").textContent = channel;

    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws;
    try {
        ws = new WebSocket(scheme + target + "/");
    } catch (e) {
        line("error " + e.message);
        state("error");
        return;
    }
    state("connecting");

    ws.onopen = function () {
        line("open");
        state("open");
        ws.send(JSON.stringify({ messageType: "subscribe", channel: channel, messageId: 1 }));
    };

    ws.onmessage = function (event) {
        var msg;
        try {
            msg = JSON.parse(event.data);
        } catch (e) {
            line("error unreadable message");
            return;
        }
        if (msg.error) {
            line("error " + msg.error.message);
        } else if (msg.messageId === 1 && msg.subscribed) {
            line("subscribed " + msg.subscribed.channel);
            state("subscribed");
            ws.send(JSON.stringify({ messageType: "action", action: "status", messageId: 2 }));
        } else if (msg.messageId === 2 && msg.response) {
            line("status " + msg.response.name);
        } else if (msg.message) {
            line("message " + msg.message.channel + " " + JSON.stringify(msg.message.message));
        }
    };

    ws.onerror = function () {
        line("error");
        state("error");
    };

    ws.onclose = function (event) {
        line("closed " + event.code);
        state("closed");
    };
}());
