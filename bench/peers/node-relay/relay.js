// A hand-written WebSocket broadcast relay: what a user deploys instead of a gateway when all
// they want is "one upstream feed, many clients". It is the peer `tickgate bench fanout --peer
// node` measures tickgate against, so it is written the way such relays are written: the `ws`
// package, one upstream connection, every upstream message forwarded as received (serialized
// once, by the upstream) with `send` to every subscribed client. It keeps none of tickgate's
// guarantees (no snapshot for a late joiner, no seq/gap handling, no resume, no auth); the
// only protection it has is the one most relays add after their first incident: a client
// whose unsent backlog passes 8 MiB is dropped, so one stalled reader cannot exhaust memory.
//
//   node relay.js --upstream ws://127.0.0.1:8080/v1/ws --channels a,b [--listen 127.0.0.1:0]
//
// Prints `listening <port>` on stdout once the upstream subscription is acknowledged.
'use strict';

const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const MAX_BACKLOG = 8 * 1024 * 1024;

function args(argv) {
    const out = { listen: '127.0.0.1:0' };
    for (let i = 2; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '');
        if (!['upstream', 'channels', 'listen'].includes(key) || argv[i + 1] === undefined) {
            console.error(`usage: node relay.js --upstream URL --channels A,B [--listen HOST:PORT] (bad ${argv[i]})`);
            process.exit(2);
        }
        out[key] = argv[i + 1];
    }
    if (!out.upstream || !out.channels) {
        console.error('usage: node relay.js --upstream URL --channels A,B [--listen HOST:PORT]');
        process.exit(2);
    }
    out.channels = out.channels.split(',').filter(Boolean);
    return out;
}

const opts = args(process.argv);
const clients = new Set();
let ready = false;

const server = http.createServer((req, res) => {
    if (req.url === '/readyz' || req.url === '/healthz') {
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ready ? 'ok\n' : 'upstream not subscribed\n');
    } else {
        res.writeHead(404);
        res.end();
    }
});

const wss = new WebSocketServer({ server, path: '/v1/ws', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('close', () => clients.delete(ws));
    ws.once('message', (data) => {
        let id = null;
        try {
            id = JSON.parse(data.toString()).id ?? null;
        } catch (_) {
            // A relay this simple answers anything with the subscription it has.
        }
        ws.send(JSON.stringify({ type: 'subscribed', id, channels: opts.channels }));
        clients.add(ws);
    });
});

const upstream = new WebSocket(opts.upstream, { perMessageDeflate: false });
upstream.on('open', () => {
    upstream.send(JSON.stringify({ op: 'subscribe', id: 1, channels: opts.channels }));
});
upstream.on('message', (data, isBinary) => {
    if (!ready) {
        // The first message is the upstream's own subscription ack.
        ready = true;
        const [host, port] = opts.listen.split(/:(?=[^:]*$)/);
        server.listen(Number(port), host, () => console.log(`listening ${server.address().port}`));
        return;
    }
    for (const ws of clients) {
        if (ws.bufferedAmount > MAX_BACKLOG) {
            clients.delete(ws);
            ws.terminate();
            continue;
        }
        ws.send(data, { binary: isBinary });
    }
});
upstream.on('close', () => {
    console.error('upstream closed');
    process.exit(1);
});
upstream.on('error', (error) => {
    console.error(`upstream: ${error.message}`);
    process.exit(1);
});
