import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { Service } from '../service.ts';
import { EXIT } from './exit-codes.ts';

/**
 * `treadle serve`: runs until SIGTERM or SIGINT, then drains within TREADLE_SHUTDOWN_TIMEOUT and
 * exits 0. A second signal exits at once.
 */
export async function serveCommand(env: NodeJS.ProcessEnv): Promise<number> {
  const { config, warnings } = loadConfig(env);
  const log = createLogger(config.logLevel);
  for (const w of warnings) log.warn(w);
  let fatal: string | undefined;
  let wake: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const service = Service.create(config, log, (reason) => {
    fatal = reason;
    log.fatal(reason);
    wake();
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(EXIT.failure);
    }
    log.info({ signal }, 'signal received');
    wake();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await service.start();
  } catch (err) {
    await service.stop();
    throw err;
  }
  await stopRequested;
  await service.stop();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return fatal ? EXIT.failure : EXIT.ok;
}
