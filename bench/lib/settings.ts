/** The benchmarks' settings, read from the environment once at start. */

/** A setting the environment got wrong: reported as one line, not a stack trace. */
export class SettingsError extends Error {
  override name = "SettingsError";
}

/** Reads whole-number settings from `env`: `int(name, fallback, min)`; unset or empty gives `fallback`. */
export function integerSettings(env: NodeJS.ProcessEnv): (name: string, fallback: number, min?: number) => number {
  return (name, fallback, min = 1) => {
    const text = env[name];
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min) throw new SettingsError(`${name} must be a whole number of at least ${min}: got ${text}`);
    return value;
  };
}
