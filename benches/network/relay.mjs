// A UDP relay that adds delay: the bad-link benchmark's "+200 ms round trip" (this kernel has no netem). It
// listens on LISTEN_IP at every port of PORT_MIN..PORT_MAX (the SFU announces LISTEN_IP instead of its own
// address), forwards each datagram to TARGET_IP at the same port from a socket of its own per client (the SFU
// sees the relay as the client, as behind a NAT), and holds the datagrams of clients in DELAYED_PREFIX (the
// patient's network; the nurse's go through undelayed) DELAY_MS in each direction.
// Usage: node relay.mjs LISTEN_IP TARGET_IP PORT_MIN PORT_MAX DELAY_MS DELAYED_PREFIX
import dgram from 'node:dgram';

const [listenIp, targetIp, min, max, delayMs, delayedPrefix] = process.argv.slice(2);
const delay = Number(delayMs);

for (let port = Number(min); port <= Number(max); port++) {
  const front = dgram.createSocket('udp4');
  const upstream = new Map(); // client "ip:port" -> socket toward the SFU
  front.on('message', (msg, client) => {
    const key = `${client.address}:${client.port}`;
    const later = delay > 0 && client.address.startsWith(delayedPrefix) ? (fn) => setTimeout(fn, delay) : (fn) => fn();
    let up = upstream.get(key);
    if (!up) {
      up = dgram.createSocket('udp4');
      up.bind(0, listenIp);
      up.on('message', (back) => later(() => front.send(back, client.port, client.address)));
      upstream.set(key, up);
    }
    later(() => up.send(msg, port, targetIp));
  });
  front.bind(port, listenIp);
}
console.log(`relay ${listenIp} -> ${targetIp} ports ${min}-${max}, ${delay} ms each way`);
