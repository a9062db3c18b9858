/**
 * How every benchmark ends when it fails: a setting or an unreachable database as one line that says what to do, anything
 * else with its stack; exit code 1 either way.
 */
import { DatabaseUnreachableError } from "./database";
import { SettingsError } from "./settings";

export function runBenchmark(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    if (error instanceof DatabaseUnreachableError) console.error(`error: ${error.message}\nStart PostgreSQL or set DATABASE_URL.`);
    else if (error instanceof SettingsError) console.error(`error: ${error.message}`);
    else console.error(error);
    process.exitCode = 1;
  });
}
