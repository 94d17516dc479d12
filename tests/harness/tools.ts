/** Locating the external programs the tests need, with install hints. */

const HINTS: Record<string, string> = {
  etcd: "apt-get install -y etcd-server etcd-client",
  etcdctl: "apt-get install -y etcd-client",
  openssl: "apt-get install -y openssl",
  "dbus-daemon": "apt-get install -y dbus",
};

/**
 * Throws a loud error with an install hint when `program` is not on PATH.
 * Tests that need a real server call this first: they fail, never skip.
 */
export async function requireProgram(program: string): Promise<void> {
  try {
    await new Deno.Command(program, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${program} is not installed (not found on PATH); install it with: ${
          HINTS[program] ?? `apt-get install -y ${program}`
        }`,
      );
    }
    throw error;
  }
}
