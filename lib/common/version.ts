/**
 * The locksmith version, kept equal to `deno.json` (a test checks it).
 *
 * @module
 */

/** Version of locksmith's tools and library. */
export const VERSION = "0.2.0";
