import { processEnvironment } from '../config.ts';
import { ConfigError, InstanceLockedError, InvalidRequestError, TreadleError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { backupCommand, restoreCommand } from './backup-command.ts';
import { demoCommand } from './demo-command.ts';
import { doctorCommand } from './doctor-command.ts';
import { EXIT } from './exit-codes.ts';
import { greennessCommand } from './greenness-command.ts';
import { landCommand } from './land-command.ts';
import { type Output, stdio } from './output.ts';
import { queueCommand } from './queue-command.ts';
import { runsCommand } from './runs-command.ts';
import { secretsCommand } from './secrets-command.ts';
import { serveCommand } from './serve-command.ts';

export const USAGE = `treadle ${VERSION}: a Tangled spindle that hands CI work to other CI systems

usage: treadle <command> [options]

commands:
  serve      run the spindle daemon (configured by TREADLE_* variables; see README)
  demo       run the whole spindle flow locally (fake Jetstream, knot, appview), then exit
             ("demo --serve" keeps serving the dashboard until Ctrl-C);
             "demo queue" shows the durable queue alone
  doctor     check the configuration, the database and the environment
  queue      inspect the durable queue: stats, dlq list | replay | drop  (treadle queue --help)
  runs       pipelines: list [--active], cancel <pipeline> [workflow…], retry <pipeline>  (treadle runs --help)
  greenness  which commits are green: status | history | last-green | gate <repo> <ref> [commit]  (treadle greenness --help)
  land       check | merge | promote --target <name> <commit>…: land work on git (treadle land --help)
  secrets    rotate-key: reseal repository secrets under a new key, daemon stopped (treadle secrets --help)
  backup     backup <file>: a consistent copy of the database while treadle serves
  restore    restore <file>: replace the database with a backup, daemon stopped
  help       show this text
  version    print the version

exit codes: 0 ok, 1 failure, 2 usage, 75 database in use by another treadle, 78 bad configuration`;

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = processEnvironment(),
  io: Output = stdio,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serveCommand(env);
      case 'demo':
        return await demoCommand(rest, io);
      case 'doctor':
        return await doctorCommand(env, io);
      case 'queue':
        return queueCommand(rest, env, io);
      case 'runs':
        return runsCommand(rest, env, io);
      case 'greenness':
        return greennessCommand(rest, env, io);
      case 'land':
        return await landCommand(rest, env, io);
      case 'secrets':
        return secretsCommand(rest, env, io);
      case 'backup':
        return await backupCommand(rest, env, io);
      case 'restore':
        return await restoreCommand(rest, env, io);
      case 'version':
      case '--version':
        io.out(VERSION);
        return EXIT.ok;
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return EXIT.ok;
      case undefined:
        io.err(USAGE);
        return EXIT.usage;
      default:
        io.err(`treadle: unknown command "${command}"\n\n${USAGE}`);
        return EXIT.usage;
    }
  } catch (err) {
    return reportFailure(err, io);
  }
}

function reportFailure(err: unknown, io: Output): number {
  if (err instanceof ConfigError) {
    io.err(`treadle: ${err.message}`);
    return EXIT.config;
  }
  if (err instanceof InstanceLockedError) {
    io.err(`treadle: ${err.message}`);
    return EXIT.locked;
  }
  if (
    err instanceof InvalidRequestError ||
    String((err as NodeJS.ErrnoException)?.code).startsWith('ERR_PARSE_ARGS')
  ) {
    io.err(`treadle: ${(err as Error).message}`);
    return EXIT.usage;
  }
  // Our own errors carry a message meant for the operator; anything else is a bug: show the stack.
  io.err(`treadle: ${err instanceof TreadleError ? err.message : ((err as Error)?.stack ?? String(err))}`);
  return EXIT.failure;
}
