/**
 * A store whose port sends each transaction twice and answers with the
 * second copy, as hedging does when a slow member's copy commits first:
 * the guard of the copy that answers then fails on the caller's own write
 * (the answer says it was `resent`, as the port's does).
 */

import type { EtcdLockStore } from "../../lib/etcd/store/etcd_lock_store.ts";
import type { EtcdPort } from "../../lib/etcd/client/port.ts";

/**
 * Makes `store`'s port send every Txn twice, answering with the second
 * copy. `between` runs after the first copy's answer to a Txn that writes,
 * before the second copy is sent (e.g. another client's write, which hides
 * the first copy's).
 */
export function sendEveryTxnTwice(
  store: EtcdLockStore,
  between: () => Promise<unknown> = () => Promise.resolve(),
): void {
  const real = store.port;
  (store as { port: EtcdPort }).port = new Proxy(real, {
    get(target, name) {
      if (name === "txn") {
        return async (...args: Parameters<EtcdPort["txn"]>) => {
          await target.txn(...args);
          if (args[0].success.some((op) => "put" in op)) await between();
          return { ...await target.txn(...args), resent: true };
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
