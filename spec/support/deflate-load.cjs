// deflate-load: many clients of Node's ws (permessage-deflate as browsers
// offer it) send messages of random sizes to an echo route and compare
// every echo with what they sent.
//
// Usage: node deflate-load.cjs PORT CLIENTS MESSAGES MIN_BYTES MAX_BYTES
// Prints one JSON line: clients, negotiated, received, corrupted, errors,
// bytes (message bytes sent).
'use strict';
const path = require('path');
const crypto = require('crypto');
const WebSocket = require(path.join(__dirname, '../../clients/js/node_modules/ws'));

const [port, clients, messages, min, max] = process.argv.slice(2).map(Number);
const result = { clients: 0, negotiated: 0, received: 0, corrupted: 0, errors: 0, bytes: 0 };

// Compressible like chat JSON, with random words so no two are alike.
function message(size) {
    const words = ['moon', 'tide', 'chat', 'room', 'hello', 'offset', 'epoch', 'presence'];
    const parts = [];
    let n = 0;
    while (n < size) {
        const w = words[crypto.randomInt(words.length)] + crypto.randomInt(1e6).toString(36);
        parts.push(w);
        n += w.length + 1;
    }
    return JSON.stringify({ type: 'message', text: parts.join(' ') }).slice(0, size);
}

function run(i) {
    return new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/echo/`, { perMessageDeflate: true });
        const sent = [];
        ws.on('open', () => {
            result.clients++;
            if (ws.extensions.includes('permessage-deflate')) result.negotiated++;
            for (let k = 0; k < messages; k++) {
                const m = message(min + crypto.randomInt(max - min + 1));
                sent.push(m);
                result.bytes += m.length;
                ws.send(m);
            }
        });
        ws.on('message', (data) => {
            const want = sent.shift();
            result.received++;
            if (data.toString() !== want) result.corrupted++;
            if (sent.length === 0) ws.close(1000);
        });
        ws.on('error', (e) => { result.errors++; result.last_error = `${i}: ${e.message}`; });
        ws.on('close', (code) => {
            if (code !== 1000 && code !== 1005) { result.errors++; result.last_close = code; }
            resolve();
        });
    });
}

const deadline = setTimeout(() => { result.errors++; result.timeout = true; finish(); }, 120000);
function finish() {
    clearTimeout(deadline);
    console.log(JSON.stringify(result));
    process.exit(0);
}
Promise.all(Array.from({ length: clients }, (_, i) => run(i))).then(finish);
