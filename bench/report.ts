/**
 * Figures of the benchmark: each measured value with its unit, and, for
 * those with a target, the target and whether it passes. A {@link Report}
 * collects the figures and the details behind them, prints progress lines
 * on stderr, and renders the final table.
 */

/** How a figure is compared with its target. */
export type TargetOp = ">=" | "<=" | "<" | "==";

/** A target: `value op target`. */
export interface Target {
  /** The comparison. */
  readonly op: TargetOp;
  /** The value compared with. */
  readonly value: number;
}

/** One measured figure, with its target when it has one. */
export interface Figure {
  /** The measurement it belongs to. */
  readonly section: string;
  /** What it is. */
  readonly name: string;
  /** The value. */
  readonly value: number;
  /** Its unit. */
  readonly unit: string;
  /** The target, if any. */
  readonly target?: Target;
  /** Whether the target is met (absent without a target). */
  readonly pass?: boolean;
}

/** A figure with `pass` set from its target. */
export function judge(figure: Figure): Figure {
  const t = figure.target;
  if (t === undefined) return figure;
  const v = figure.value;
  const pass = t.op === ">="
    ? v >= t.value
    : t.op === "<="
    ? v <= t.value
    : t.op === "<"
    ? v < t.value
    : v === t.value;
  return { ...figure, pass };
}

/** A number with a precision that suits its size. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5);
}

/** `figures` as an aligned text table; `withSection` adds the section column. */
export function renderTable(
  figures: readonly Figure[],
  withSection = true,
): string {
  const rows = figures.map((f) => [
    ...(withSection ? [f.section] : []),
    f.name,
    `${fmt(f.value)} ${f.unit}`.trim(),
    f.target ? `${f.target.op} ${f.target.value} ${f.unit}`.trim() : "",
    f.target ? (f.pass ? "pass" : "MISS") : "",
  ]);
  const head = [
    ...(withSection ? ["measurement"] : []),
    "figure",
    "value",
    "target",
    "result",
  ];
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i]!.length))
  );
  const line = (r: string[]) =>
    r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [
    line(head),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
  ].join("\n");
}

/** `N targets pass, M miss: ...`. */
export function summary(figures: readonly Figure[]): string {
  const misses = figures.filter((f) => f.pass === false);
  const targets = figures.filter((f) => f.target).length;
  return `${targets - misses.length} targets pass, ${misses.length} miss${
    misses.length ? `: ${misses.map((f) => f.name).join("; ")}` : ""
  }`;
}

/** Collects figures and details; see the module documentation. */
export class Report {
  /** Every figure so far, in order. */
  readonly figures: Figure[] = [];
  /** Details behind the figures, by measurement. */
  readonly details: Record<string, unknown> = {};

  /** Writes one progress line on stderr. */
  log(line: string): void {
    console.error(line);
  }

  /** Records a figure (judged against its target) and logs it. */
  add(
    section: string,
    name: string,
    value: number,
    unit: string,
    target?: Target,
  ): Figure {
    const f = judge(
      target
        ? { section, name, value, unit, target }
        : { section, name, value, unit },
    );
    this.figures.push(f);
    const t = f.target
      ? `  (target ${f.target.op} ${f.target.value} ${unit}: ${
        f.pass ? "pass" : "MISS"
      })`
      : "";
    this.log(`  ${name}: ${fmt(value)} ${unit}${t}`);
    return f;
  }

  /** Records the details of measurement `name`. */
  detail(name: string, value: unknown): void {
    this.details[name] = value;
  }
}
