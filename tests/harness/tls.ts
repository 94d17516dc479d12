/** Test certificates made with openssl at test time. */

import { requireProgram } from "./tools.ts";

/** A CA, a server certificate for 127.0.0.1 and a client certificate. */
export interface TestCertificates {
  /** Directory holding the files. */
  readonly dir: string;
  /** CA certificate. */
  readonly caFile: string;
  /** Server certificate (SAN IP:127.0.0.1, DNS:localhost). */
  readonly serverCert: string;
  /** Server key. */
  readonly serverKey: string;
  /** Client certificate signed by the CA. */
  readonly clientCert: string;
  /** Client key. */
  readonly clientKey: string;
  /** Removes the directory. */
  remove(): Promise<void>;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** openssl arguments for a new unencrypted P-256 key. */
const NEW_EC_KEY = [
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
];

/** Generates a fresh CA with server and client certificates in a temp dir. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  await requireProgram("openssl");
  const dir = await Deno.makeTempDir({ prefix: "locksmith-tls-" });
  await openssl(
    dir,
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=locksmith test CA",
  );
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  await Deno.writeTextFile(
    `${dir}/client.ext`,
    "extendedKeyUsage=clientAuth\n",
  );
  for (const who of ["server", "client"]) {
    await openssl(
      dir,
      "req",
      ...NEW_EC_KEY,
      "-keyout",
      `${who}.key`,
      "-out",
      `${who}.csr`,
      "-subj",
      `/CN=${who}`,
    );
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${who}.pem`,
      "-days",
      "2",
      "-extfile",
      `${who}.ext`,
    );
  }
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
