/**
 * Progress for the demo's long parts: a cli-progress bar on stderr when stderr is a terminal, nothing
 * otherwise (CI logs and piped output stay clean; the table goes to stdout either way). cli-progress is
 * loaded here, lazily, so the library path never loads it.
 */
export interface Progress {
  /** Starts a phase of `total` units. */
  start(phase: string, total: number): void;
  /** One unit done; `label` says what runs next or what just finished. */
  tick(label: string): void;
  /** Ends the phase (the bar is cleared); `completed` false (an error) skips the "done" line. */
  stop(completed?: boolean): void;
}

const SILENT: Progress = { start() {}, tick() {}, stop() {} };

type CliProgress = typeof import('cli-progress');

/** A progress reporter: a bar on `stream` when `enabled` and the stream is a TTY, else silent. */
export async function createProgress(enabled = true, stream: NodeJS.WriteStream = process.stderr): Promise<Progress> {
  if (!enabled || !stream.isTTY) return SILENT;
  // A CommonJS package: its exports arrive as the namespace (ESM build) or as `default` (interop).
  const mod = (await import('cli-progress')) as CliProgress & { default?: CliProgress };
  const cp = mod.default ?? mod;
  let bar: InstanceType<CliProgress['SingleBar']> | undefined;
  let phase = '';
  return {
    start(name, total) {
      bar?.stop();
      phase = name;
      bar = new cp.SingleBar(
        {
          format: `${name.padEnd(18)} {bar} {percentage}% | {value}/{total} | {task}`,
          stream,
          hideCursor: true,
          clearOnComplete: true,
          barsize: 30,
        },
        cp.Presets.shades_classic,
      );
      bar.start(total, 0, { task: 'starting' });
    },
    tick(label) {
      bar?.increment(1, { task: label });
    },
    stop(completed = true) {
      bar?.stop();
      bar = undefined;
      if (phase && completed) stream.write(`${phase}: done\n`);
      phase = '';
    },
  };
}
