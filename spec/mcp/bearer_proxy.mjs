// Test-only reverse proxy for MCP clients that cannot do OAuth themselves (the conformance
// runner sends no token): it listens on 127.0.0.1, forwards every request to keryx unchanged
// except for `Authorization: Bearer <token>`, and streams the answer back as it comes (SSE
// included). keryx itself gets no bypass: it checks this token like any other.
//
// Host and Origin are forwarded as the client sent them, so keryx's DNS-rebinding checks see
// what the client sent: a foreign Host/Origin is still refused. keryx must therefore accept the
// proxy's origin (MCP_ALLOWED_ORIGINS) and its loopback Host, as it would any local front end.
//
// As a program: MCP_BEARER_TOKEN=<token> node bearer_proxy.mjs <upstream origin> [port]
// prints "listening http://127.0.0.1:<port>" and runs until killed. The token comes from the
// environment, not argv, so it does not show in the process list.
import http from "node:http";

// Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business on each leg.
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);

/** Starts the proxy; resolves to { url, port, close() }. */
export function startBearerProxy({ upstream, token, port = 0, host = "127.0.0.1" }) {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    headers.authorization = `Bearer ${token}`;
    const up = http.request(
      { host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers, agent },
      (ures) => {
        const out = {};
        for (const [k, v] of Object.entries(ures.headers)) if (!HOP.has(k)) out[k] = v;
        res.writeHead(ures.statusCode, ures.statusMessage, out);
        res.flushHeaders(); // an SSE stream's headers go out before its first event
        ures.pipe(res);
        ures.on("error", () => res.destroy());
      },
    );
    up.on("error", (e) => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`bearer_proxy: ${e.message}`);
      } else res.destroy();
    });
    // A client that goes away (an SSE GET it stops reading) ends the upstream request too.
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const p = server.address().port;
      resolve({
        url: `http://${host}:${p}`,
        port: p,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections?.();
            agent.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [upstream, port] = process.argv.slice(2);
  const token = process.env.MCP_BEARER_TOKEN;
  if (!upstream || !token) {
    console.error("usage: MCP_BEARER_TOKEN=<token> node bearer_proxy.mjs <upstream origin> [port]");
    process.exit(2);
  }
  const p = await startBearerProxy({ upstream, token, port: Number(port || 0) });
  console.log(`listening ${p.url}`);
}
