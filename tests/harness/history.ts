/** Reads every revision of a key from etcd, for invariant checks. */

import { Etcd3 } from "etcd3";

/** One stored version of a key. */
export interface KeyVersion {
  /** The key's mod_revision for this version. */
  readonly revision: number;
  /** The stored value, or `undefined` for a delete. */
  readonly value: string | undefined;
}

/**
 * Returns every version of `key` since its creation, in order, by replaying
 * a watch from its create revision up to its current mod_revision (the
 * tests compact only before a key is created). A key deleted and created
 * again shows its versions since the last creation.
 */
export async function keyHistory(
  endpoints: string[],
  key: string,
): Promise<KeyVersion[]> {
  const client = new Etcd3({ hosts: endpoints });
  try {
    const current = (await client.get(key).exec()).kvs[0];
    if (current === undefined) return [];
    const head = Number(current.mod_revision);
    const versions: KeyVersion[] = [];
    const watcher = await client.watch().key(key)
      .startRevision(String(current.create_revision)).create();
    const decoder = new TextDecoder();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("history replay timed out")),
        30_000,
      );
      const seen = (revision: number) => {
        if (revision >= head) {
          clearTimeout(timer);
          resolve();
        }
      };
      watcher.on("data", (res) => {
        for (const event of res.events) {
          const revision = Number(event.kv.mod_revision);
          versions.push({
            revision,
            value: event.type === "Delete"
              ? undefined
              : decoder.decode(event.kv.value),
          });
        }
        const last = res.events.at(-1);
        if (last) seen(Number(last.kv.mod_revision));
      });
    });
    await watcher.cancel();
    return versions;
  } finally {
    client.close();
  }
}
