// Types of strata-crdt (lib/index.js).

/** A stored value: null, boolean, number (integers up to 2^53 stay
 *  integers), bigint (64-bit integers), string, or bytes. */
export type Value = null | boolean | number | bigint | string | Buffer;
/** A field as read: a register's value, a counter's number, a set's
 *  sorted elements. */
export type Field = Value | Value[];

/** Thrown for every Strata failure. */
export interface StrataError extends Error {
  /** The Strata error name, e.g. "CRDT_EBUSY". */
  code: string;
  /** Its number, e.g. -14 (crdt/error.h). */
  errno: number;
  /** For a failed sync: the report so far. */
  report?: SyncReport;
}

export interface CommitInfo { firstSeq: number; lastSeq: number; }

export interface Txn {
  put(coll: string, doc: string, field: string, value: Value): this;
  incr(coll: string, doc: string, field: string, n?: number | bigint): this;
  sadd(coll: string, doc: string, field: string, value: Value): this;
  srem(coll: string, doc: string, field: string, value: Value): this;
  /** Delete a document, or one of its fields. */
  del(coll: string, doc: string, field?: string): this;
  commit(): CommitInfo;
  abort(): void;
}

/** The writes of one Replica.write(), applied off the JS thread. */
export interface WriteBatch {
  put(coll: string, doc: string, field: string, value: Value): this;
  incr(coll: string, doc: string, field: string, n?: number | bigint): this;
  sadd(coll: string, doc: string, field: string, value: Value): this;
  srem(coll: string, doc: string, field: string, value: Value): this;
  /** Delete a document, or one of its fields. */
  del(coll: string, doc: string, field?: string): this;
}

/** One changed document of a commit, or "everything may have changed". */
export type Change =
  | { cursor: string; coll: string; doc: string; fields: string[]; whole: boolean }
  | { cursor: string; everything: true };

export interface SubscribeFilter {
  coll?: string;
  doc?: string;
  /** Resume after this cursor (from an earlier change). */
  since?: string;
}

export interface Subscription { close(): void; }

/** The report of a sync, as `strata sync --json` (camelCase). */
export interface SyncReport {
  changesSent: number; changesReceived: number; opsReceived: number;
  /** changes of the next epoch's cut fetched before re-deriving it */
  cutChanges: number;
  snapshotReceived: boolean; snapshotSent: boolean; snapshotEntries: number;
  rebased: number; quarantined: number; conflicts: number;
  rejected: boolean; inSync: boolean; reason: string; stateHash: string;
  busyRetryMs: number;
}

export interface PeerStep { out: Buffer; done: boolean; }

/** Sync over any transport: move the bytes yourself. */
export interface Peer {
  readonly done: boolean;
  start(): Promise<PeerStep>;
  receive(bytes: Uint8Array): Promise<PeerStep>;
  end(): Promise<PeerStep>;
  /** The report once done; throws a StrataError if the sync failed. */
  result(): SyncReport;
  close(): void;
}

export interface Replica {
  readonly info: { spaceId: string; publicKey: string; path: string };
  txn(fn: (t: Txn) => void): CommitInfo;
  begin(): Txn;
  /** Like txn(), but the commit (and its wait for the disk) runs on
   *  Node's thread pool; concurrent write()s share LMDB txns and syncs.
   *  Resolves once the change is durable. Rejects with CRDT_EBUSY while
   *  a begin() txn of this replica is open. */
  write(fn: (w: WriteBatch) => void): Promise<CommitInfo>;
  get(coll: string, doc: string): Record<string, Field> | undefined;
  get(coll: string, doc: string, field: string): Field | undefined;
  collections(): string[];
  docs(coll: string): string[];
  subscribe(cb: (changes: Change[]) => void): Subscription;
  subscribe(filter: SubscribeFilter, cb: (changes: Change[]) => void): Subscription;
  sync(host: string, port: number | string): Promise<SyncReport>;
  peer(role?: 'client' | 'server'): Peer;
  close(): void;
}

export function open(dir: string, opts?: { create?: boolean }): Replica;
export function syncStream(peer: Peer, readable: NodeJS.ReadableStream,
                           writable: NodeJS.WritableStream): Promise<SyncReport>;
