/**
 * Test support: a TCP proxy between the service and one of its dependencies (PostgreSQL, Redis, the chain's RPC)
 * that makes real network faults on demand, so failure tests exercise the real drivers' behaviour rather than a
 * mock's:
 *   - `forward`:   relays bytes both ways (the normal case);
 *   - `refuse`:    the port stops listening (connection refused) and every open connection is reset — a crashed
 *                  or restarted dependency;
 *   - `blackhole`: connections are accepted and kept, but nothing is relayed in either direction — a wedged
 *                  dependency or a network partition. Bytes sent meanwhile are held and delivered when forwarding
 *                  resumes, as TCP retransmission would after a partition heals.
 */
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";

export type FaultMode = "forward" | "refuse" | "blackhole";

export type FaultProxy = {
  /** The port the service should connect to. */
  readonly port: number;
  readonly mode: FaultMode;
  setMode(mode: FaultMode): Promise<void>;
  /** Connections currently open through the proxy. */
  connections(): number;
  close(): Promise<void>;
};

type Pair = { client: Socket; upstream: Socket; held: Array<{ to: Socket; chunk: Buffer }> };

export async function startFaultProxy(target: { host?: string; port: number }, options: { port?: number } = {}): Promise<FaultProxy> {
  const host = target.host ?? "127.0.0.1";
  let mode: FaultMode = "forward";
  const pairs = new Set<Pair>();

  const relay = (pair: Pair, to: Socket) => (chunk: Buffer) => {
    if (mode === "blackhole") pair.held.push({ to, chunk });
    else if (!to.destroyed) to.write(chunk);
  };

  const onConnection = (client: Socket) => {
    if (mode === "refuse") return void client.resetAndDestroy();
    const upstream = connect({ host, port: target.port });
    const pair: Pair = { client, upstream, held: [] };
    pairs.add(pair);
    client.on("data", relay(pair, upstream));
    upstream.on("data", relay(pair, client));
    const end = () => {
      pairs.delete(pair);
      if (!client.destroyed) client.destroy();
      if (!upstream.destroyed) upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  };

  let server: Server = createServer(onConnection);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()));
  const port = await listen(options.port ?? 0);

  return {
    port,
    get mode() {
      return mode;
    },
    async setMode(next) {
      if (next === mode) return;
      const previous = mode;
      mode = next;
      if (next === "refuse") {
        for (const pair of pairs) {
          pair.client.resetAndDestroy();
          pair.upstream.destroy();
        }
        pairs.clear();
        await stopListening();
        return;
      }
      if (previous === "refuse") {
        server = createServer(onConnection);
        await listen(port);
      }
      if (next === "forward") {
        for (const pair of pairs) {
          for (const { to, chunk } of pair.held) if (!to.destroyed) to.write(chunk);
          pair.held = [];
        }
      }
    },
    connections: () => pairs.size,
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      if (mode !== "refuse") await stopListening();
    },
  };
}
