import test from 'ava';
import { classifyRedisOutput } from '../../engine/redis/server-output.ts';

// Lines redis-server 7.0.15 wrote under the embedded settings (start, AOF rewrite, SIGTERM), and
// what each is worth in Ferry's log.

const lines: Array<[string, 'debug' | 'warn', number | undefined, string]> = [
  ['16263:C 07 Dec 2026 22:01:21.759 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo', 'debug', 16263, 'oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo'],
  ['16263:C 07 Dec 2026 22:01:21.759 # Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=16263, just started', 'debug', 16263, 'Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=16263, just started'],
  ['16263:C 07 Dec 2026 22:01:21.759 # Configuration loaded', 'debug', 16263, 'Configuration loaded'],
  ['16263:M 07 Dec 2026 22:01:21.764 * Running mode=standalone, port=0.', 'debug', 16263, 'Running mode=standalone, port=0.'],
  ['16263:M 07 Dec 2026 22:01:21.764 # Server initialized', 'debug', 16263, 'Server initialized'],
  [
    "16263:M 07 Dec 2026 22:01:21.764 # WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf",
    'debug',
    16263,
    "WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf",
  ],
  ['16263:M 07 Dec 2026 22:01:21.772 * The server is now ready to accept connections at /tmp/s.sock', 'debug', 16263, 'The server is now ready to accept connections at /tmp/s.sock'],
  ['16303:C 07 Dec 2026 22:01:22.819 * Successfully created the temporary AOF base file temp-rewriteaof-bg-16303.aof', 'debug', 16303, 'Successfully created the temporary AOF base file temp-rewriteaof-bg-16303.aof'],
  ['16263:signal-handler (1796680883) Received SIGTERM scheduling shutdown...', 'debug', 16263, 'Received SIGTERM scheduling shutdown...'],
  ['16263:M 07 Dec 2026 22:01:23.880 # User requested shutdown...', 'debug', 16263, 'User requested shutdown...'],
  ['16263:M 07 Dec 2026 22:01:23.880 * Calling fsync() on the AOF file.', 'debug', 16263, 'Calling fsync() on the AOF file.'],
  ['16263:M 07 Dec 2026 22:01:23.887 # Redis is now ready to exit, bye bye...', 'debug', 16263, 'Redis is now ready to exit, bye bye...'],
  // Real warnings, and what redis prints outside its log format as it refuses to start.
  ['16263:M 07 Dec 2026 22:01:24.000 # Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.', 'warn', 16263, 'Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.'],
  ['*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***', 'warn', undefined, '*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***'],
  ['', 'debug', undefined, ''],
];

for (const [line, level, redisPid, text] of lines) {
  test(`${level}: ${line.slice(0, 90) || '(blank)'}`, (t) => {
    t.deepEqual(classifyRedisOutput(line), redisPid === undefined ? { level, text } : { level, redisPid, text });
  });
}
