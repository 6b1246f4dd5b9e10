import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { isRedisClient } from '../lock-options.validation.js';
import { ACQUIRE_SCRIPT, EXTEND_SCRIPT, FAIR_ACQUIRE_SCRIPT, FAIR_LEAVE_SCRIPT, FAIR_RELEASE_SCRIPT, RELEASE_SCRIPT, } from './redis-scripts.js';
/** One Redis (standalone or Sentinel through ioredis options, or a client passed in). */
export class RedisLockStore {
    constructor(client, 
    /** Whether we created the client, and therefore close it on shutdown. */
    ownsClient, prefix) {
        this.ownsClient = ownsClient;
        this.prefix = prefix;
        this.logger = new Logger('LockService');
        this.closed = false;
        this.client = client;
        this.releaseChannel = `${prefix}released`;
        // Idempotent: a client shared by several LockModules gets the same definitions.
        client.defineCommand('nestjsRedisLockAcquire', { lua: ACQUIRE_SCRIPT });
        client.defineCommand('nestjsRedisLockExtend', { lua: EXTEND_SCRIPT });
        client.defineCommand('nestjsRedisLockRelease', { lua: RELEASE_SCRIPT });
        client.defineCommand('nestjsRedisLockFairAcquire', { lua: FAIR_ACQUIRE_SCRIPT });
        client.defineCommand('nestjsRedisLockFairRelease', { lua: FAIR_RELEASE_SCRIPT });
        client.defineCommand('nestjsRedisLockFairLeave', { lua: FAIR_LEAVE_SCRIPT });
    }
    static create(connection, prefix) {
        if (isRedisClient(connection))
            return new RedisLockStore(connection, false, prefix);
        const client = typeof connection === 'string' ? new Redis(connection) : new Redis(connection);
        const store = new RedisLockStore(client, true, prefix);
        store.reportErrors(client, 'connection');
        return store;
    }
    async acquire(keys, token, ttl, fair) {
        const reply = fair
            ? await this.client.nestjsRedisLockFairAcquire(4, ...this.fairKeys(keys[0]), token, ttl, fair.presenceTtl)
            : await this.client.nestjsRedisLockAcquire(keys.length * 2, ...keys.map((key) => this.lockKey(key)), ...keys.map((key) => `${this.lockKey(key)}:fence`), token, ttl);
        if (reply[0] === 1) {
            if (fair)
                return { acquired: true, fences: [Number(reply[1])], grantedEarlier: reply[2] === 1 };
            return { acquired: true, fences: reply.slice(1).map(Number) };
        }
        return { acquired: false, busyKey: keys[reply[1] - 1], busyForMs: Number(reply[2]) };
    }
    async extend(renewals) {
        const argsOf = (renewal) => [
            renewal.keys.length,
            ...renewal.keys.map((key) => this.lockKey(key)),
            renewal.token,
            renewal.ttl,
        ];
        if (renewals.length === 1 || this.client.isCluster) {
            // A Cluster pipeline must stay within one slot; separate calls are still written together.
            return Promise.all(renewals.map((renewal) => this.client.nestjsRedisLockExtend(...argsOf(renewal)).then((reply) => reply === 1, (error) => toError(error))));
        }
        const pipeline = this.client.pipeline();
        for (const renewal of renewals)
            pipeline.nestjsRedisLockExtend(...argsOf(renewal));
        const replies = (await pipeline.exec()) ?? [];
        return renewals.map((_, i) => {
            const [error, reply] = replies[i] ?? [new Error('no reply in pipeline'), undefined];
            return error ? toError(error) : reply === 1;
        });
    }
    async release(keys, token, fair) {
        if (fair)
            return this.client.nestjsRedisLockFairRelease(4, ...this.fairKeys(keys[0]), token, this.releaseChannel, keys[0]);
        const lockKeys = keys.map((key) => this.lockKey(key));
        return this.client.nestjsRedisLockRelease(keys.length, ...lockKeys, token, this.releaseChannel, ...keys);
    }
    async leaveQueue(key, token, ttl) {
        await this.client.nestjsRedisLockFairLeave(4, ...this.fairKeys(key), token, ttl, this.releaseChannel, key);
    }
    async isLocked(key) {
        return (await this.client.exists(this.lockKey(key))) === 1;
    }
    listenForReleases(onRelease) {
        if (this.closed)
            return Promise.reject(new Error('store closed'));
        this.listening ??= this.subscribe(onRelease).catch((error) => {
            // Let a later wait try again; until then waiters fall back to polling.
            this.listening = undefined;
            throw error;
        });
        return this.listening;
    }
    async close() {
        this.closed = true;
        this.subscriber?.disconnect();
        this.subscriber = undefined;
        if (!this.ownsClient)
            return;
        if (this.client.status === 'ready') {
            await this.client.quit().catch(() => this.client.disconnect());
        }
        else {
            this.client.disconnect();
        }
    }
    async subscribe(onRelease) {
        // A connection in subscriber mode can run nothing else, so it is a separate one, made lazily:
        // a service that never waits never opens it.
        const subscriber = this.client.duplicate();
        this.subscriber = subscriber;
        this.reportErrors(subscriber, 'release subscriber');
        subscriber.on('message', (channel, message) => {
            if (channel !== this.releaseChannel)
                return;
            const notice = parseReleaseMessage(message);
            if (notice)
                onRelease(notice);
        });
        // ioredis re-subscribes by itself after a reconnect; messages sent meanwhile are covered by the poll.
        await subscriber.subscribe(this.releaseChannel);
        if (this.closed)
            subscriber.disconnect();
    }
    /** Lock, fence, queue and presence keys of a fair lock, all in the key's Cluster slot. */
    fairKeys(key) {
        const lockKey = this.lockKey(key);
        return [lockKey, `${lockKey}:fence`, `${lockKey}:queue`, `${lockKey}:waiting`];
    }
    /** `<prefix>{key}`: the braces keep the lock and its fence counter in one Cluster slot. */
    lockKey(key) {
        return `${this.prefix}{${key}}`;
    }
    /** Connections we open report errors through the Nest logger instead of ioredis' console fallback. */
    reportErrors(client, role) {
        let lastLogged = 0;
        client.on('error', (error) => {
            const now = Date.now();
            if (now - lastLogged < 10_000)
                return; // a down Redis errors on every reconnect attempt
            lastLogged = now;
            this.logger.warn(`Redis ${role} error: ${error.message}`);
        });
    }
}
/** Token length in hex characters (128 bits). */
const TOKEN_LENGTH = 32;
/** "r<key>" for a release, "g<token><fence>:<key>" for a fair handover (see redis-scripts.ts). */
export function parseReleaseMessage(message) {
    if (message.startsWith('r'))
        return { key: message.slice(1) };
    if (!message.startsWith('g'))
        return undefined;
    const token = message.slice(1, 1 + TOKEN_LENGTH);
    const separator = message.indexOf(':', 1 + TOKEN_LENGTH);
    if (separator < 0)
        return undefined;
    const fence = Number(message.slice(1 + TOKEN_LENGTH, separator));
    return { key: message.slice(separator + 1), grantedTo: { token, fence } };
}
function toError(error) {
    return error instanceof Error ? error : new Error(String(error));
}
//# sourceMappingURL=redis.store.js.map