/**
 * Floors beside a waiting locksmithd: a Deno program that loads one part of
 * what locksmithd loads, does what the daemon does with it, and then stays
 * up until killed, so that its resident set can be compared.
 *
 * Usage: `deno run -A bench/idle.ts [MODE]`, MODE one of
 * - (none): nothing at all;
 * - `etcd ENDPOINTS GROUP`: locksmithd's etcd stack over the JSON gateway,
 *   joined to the group's wait queue and watching (as a waiter does);
 * - `dbus`: dbus-next connected to `DBUS_SYSTEM_BUS_ADDRESS`.
 */

const [mode, endpoints, group] = Deno.args;
if (mode === "etcd" && endpoints && group !== undefined) {
  const { SimMachine } = await import("./sim_machine.ts");
  const machine = new SimMachine({
    endpoints: endpoints.split(","),
    group,
    id: `bench-idle-${Deno.pid}`,
  });
  machine.acquire().catch(() => {});
} else if (mode === "dbus") {
  const { connectSystemBus } = await import("../lib/dbus/system_bus.ts");
  await connectSystemBus({});
} else if (mode !== undefined) {
  console.error("usage: idle.ts [etcd ENDPOINTS GROUP | dbus]");
  Deno.exit(2);
}
setInterval(() => {}, 2 ** 30);
