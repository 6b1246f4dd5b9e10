/**
 * Test harness: an in-process TCP proxy (Node `net`) between an app and Redis, to simulate network
 * faults the Redis server itself cannot: a slow network, a cut connection, a hung (blackholed)
 * network.
 *
 *   const proxy = await TcpProxy.start(server.port);
 *   const app = await startLockApp({ redis: { host: '127.0.0.1', port: proxy.port } });
 *   proxy.setLatency(400);   // every chunk waits 400 ms, in both directions
 *   proxy.cutAll();          // every current connection is destroyed (the client reconnects)
 *   proxy.blackhole(true);   // connections are accepted, nothing is forwarded
 *   proxy.blackhole(false);  // the network heals: what was held back is delivered, in order
 *   await proxy.cutAfterRequest((chunk) => chunk.includes('EVALSHA'), 50);
 *                            // the next matching request reaches Redis, its reply is held back,
 *                            // and 50 ms later that connection is cut: the reply is lost
 *   const hit = await proxy.loseReply(match); hit?.cut();   // the same, cut when the caller says
 *   await proxy.close();
 *
 * The proxy behaves like TCP does: bytes of one connection are never dropped, duplicated or
 * reordered. A blackhole only holds them back (as TCP retransmission would until the network
 * comes back); only `cutAll()` / `close()` discard what is in flight, together with the connection.
 */
import net, { type AddressInfo } from 'node:net';
// Timers from the module, not the globals: jest.useFakeTimers() must not freeze the network.
import { clearTimeout, setTimeout } from 'node:timers';

const HOST = '127.0.0.1';

/** Which way a latency applies: requests (app → Redis), replies (Redis → app), or both. */
export type Direction = 'both' | 'toServer' | 'toClient';

interface Timing {
  latency(direction: 'toServer' | 'toClient'): number;
  readonly blackholed: boolean;
  /** Sees every request chunk first; true freezes that connection's replies (see cutAfterRequest). */
  onRequest?: (chunk: Buffer, connection: Connection) => boolean;
}

/** One direction of one connection: a FIFO of chunks, each delivered once due and at the head. */
class Pipe {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private closed = false;
  /** Bytes written to the destination so far. */
  delivered = 0;

  constructor(
    private readonly to: net.Socket,
    private readonly direction: 'toServer' | 'toClient',
    private readonly timing: Timing,
  ) {}

  push(chunk: Buffer): void {
    if (this.closed) return;
    this.queue.push({ due: Date.now() + this.timing.latency(this.direction), chunk });
    this.pump();
  }

  /** The source half-closed: end the destination once everything before it was delivered. */
  end(): void {
    this.ended = true;
    this.pump();
  }

  /** Held back for good (until the connection is cut): nothing more is delivered. */
  frozen = false;

  pump(): void {
    if (this.closed) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.timing.blackholed || this.frozen) return;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0].due <= now) {
      const { chunk } = this.queue.shift() as { due: number; chunk: Buffer };
      this.delivered += chunk.length;
      if (!this.to.destroyed) this.to.write(chunk);
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.pump(), Math.max(1, this.queue[0].due - now));
    } else if (this.ended && !this.to.destroyed) {
      this.to.end();
    }
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** One proxied connection: the app's socket, Redis' socket, and a pipe each way. */
class Connection {
  readonly toServer: Pipe;
  readonly toClient: Pipe;
  private done = false;

  constructor(
    readonly client: net.Socket,
    readonly server: net.Socket,
    timing: Timing,
    private readonly onClosed: (connection: Connection) => void,
  ) {
    this.toServer = new Pipe(server, 'toServer', timing);
    this.toClient = new Pipe(client, 'toClient', timing);
    client.setNoDelay(true);
    server.setNoDelay(true);
    client.on('data', (chunk: Buffer) => {
      // Armed: from the matching request on, replies on this connection are held back, then cut.
      if (!this.toClient.frozen && timing.onRequest?.(chunk, this)) this.toClient.frozen = true;
      this.toServer.push(chunk);
    });
    server.on('data', (chunk: Buffer) => this.toClient.push(chunk));
    client.on('end', () => this.toServer.end());
    server.on('end', () => this.toClient.end());
    // A reset or a failure on either side takes the whole connection down, as it would for a
    // direct connection (e.g. Redis refused or went away: the app sees its connection close).
    for (const socket of [client, server]) {
      socket.on('error', () => this.destroy());
      socket.on('close', () => this.destroy());
    }
  }

  pump(): void {
    this.toServer.pump();
    this.toClient.pump();
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.toServer.close();
    this.toClient.close();
    this.client.destroy();
    this.server.destroy();
    this.onClosed(this);
  }
}

export class TcpProxy {
  private readonly connections = new Set<Connection>();
  private latencyToServer = 0;
  private latencyToClient = 0;
  private holding = false;
  private armed: { match: (chunk: Buffer) => boolean; fired: (hit: { request: Buffer; cut: () => void } | undefined) => void } | undefined;
  private readonly watchers = new Set<(chunk: Buffer) => void>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly listener: net.Server,
    readonly port: number,
    readonly targetPort: number,
    readonly targetHost: string,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards every connection to `targetHost:targetPort`. */
  static async start(targetPort: number, targetHost = HOST): Promise<TcpProxy> {
    const listener = net.createServer();
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ port: 0, host: HOST }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const proxy = new TcpProxy(listener, (listener.address() as AddressInfo).port, targetPort, targetHost);
    listener.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  /**
   * Delays every chunk by `ms` in the given direction (default both). Chunks already on their way
   * keep their delay, and chunks never overtake each other.
   */
  setLatency(ms: number, direction: Direction = 'both'): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`TcpProxy.setLatency: expected ms >= 0, got ${ms}`);
    if (direction !== 'toClient') this.latencyToServer = ms;
    if (direction !== 'toServer') this.latencyToClient = ms;
    for (const connection of this.connections) connection.pump();
  }

  /** Destroys every current connection, with whatever was in flight on it. New ones are accepted. */
  cutAll(): void {
    for (const connection of [...this.connections]) connection.destroy();
  }

  /**
   * Loses the reply of one request, as a network failing at the worst moment would: the next
   * request chunk (on any connection) for which `match` is true is delivered to Redis, but from
   * then on nothing more comes back on that connection. Resolves with that request and `cut()`,
   * which destroys the connection with the replies held back: the client reconnects and (ioredis)
   * re-sends the commands it never got an answer to. Resolves undefined if disarmed first (by
   * another call, `disarm()` or `close()`).
   */
  loseReply(match: (chunk: Buffer) => boolean): Promise<{ request: Buffer; cut: () => void } | undefined> {
    this.armed?.fired(undefined);
    return new Promise((resolve) => {
      this.armed = { match, fired: resolve };
    });
  }

  /** The same, cutting the connection `holdMs` after the request went through; resolves true once cut. */
  async cutAfterRequest(match: (chunk: Buffer) => boolean, holdMs: number): Promise<boolean> {
    const hit = await this.loseReply(match);
    if (!hit) return false;
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    hit.cut();
    return true;
  }

  /** Cancels a pending loseReply / cutAfterRequest (it resolves undefined / false). */
  disarm(): void {
    this.armed?.fired(undefined);
    this.armed = undefined;
  }

  /** Calls `listener` with every request chunk from now on (before it is forwarded); returns a stop function. */
  watchRequests(listener: (chunk: Buffer) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  private onRequest(chunk: Buffer, connection: Connection): boolean {
    for (const watcher of this.watchers) watcher(chunk);
    const armed = this.armed;
    if (!armed || !armed.match(chunk)) return false;
    this.armed = undefined;
    armed.fired({ request: chunk, cut: () => connection.destroy() });
    return true;
  }

  /**
   * `true`: connections (current and new) are accepted but nothing is forwarded either way: a hung
   * network. `false`: the network heals and what was held back is delivered, in order.
   */
  blackhole(on: boolean): void {
    this.holding = on;
    if (!on) for (const connection of this.connections) connection.pump();
  }

  /** Connections currently open through the proxy. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes delivered so far over the current connections: requests to Redis and replies to the app. */
  get bytesDelivered(): { toServer: number; toClient: number } {
    let toServer = 0;
    let toClient = 0;
    for (const connection of this.connections) {
      toServer += connection.toServer.delivered;
      toClient += connection.toClient.delivered;
    }
    return { toServer, toClient };
  }

  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.disarm();
      this.listener.close(() => resolve());
      this.cutAll();
    });
    return this.closing;
  }

  private accept(client: net.Socket): void {
    if (this.closing) {
      client.destroy();
      return;
    }
    const server = net.createConnection({ host: this.targetHost, port: this.targetPort });
    const proxy = this;
    const timing: Timing = {
      latency: (direction) => (direction === 'toServer' ? this.latencyToServer : this.latencyToClient),
      get blackholed() {
        return proxy.holding;
      },
      onRequest: (chunk, connection) => this.onRequest(chunk, connection),
    };
    this.connections.add(new Connection(client, server, timing, (connection) => this.connections.delete(connection)));
  }
}
