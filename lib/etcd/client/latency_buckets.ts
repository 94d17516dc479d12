/**
 * The buckets of the etcd request latency histograms of locksmithd and
 * `locksmithd serve`, so that their metrics compare.
 *
 * @module
 */

/** Buckets of `locksmithd_etcd_request_duration_seconds` (and serve's etcd histogram), 1 ms to 10 s. */
export const ETCD_LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);
