import { relative } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { hashPassword } from './auth/passwords.ts';
import { isRole, newApiToken, readUsersFile, roles, userNamePattern, userNameRule, writeUsersFile, type User } from './auth/users.ts';
import { loadConfig } from './config/load.ts';
import { FerryError } from './errors.ts';

// `ferry user add|passwd|remove|list|token`: manages the admin users file (engine.users). Passwords
// come from standard input — piped (`echo secret | ferry user add bob --role viewer`) or typed —
// never from the command line, where other users of the machine could read them in `ps`.

export const USER_USAGE = `  ferry user add <name> --role admin|operator|viewer [-c channels.yaml]
                                          add an admin user; the password is read from standard input
  ferry user passwd <name> [-c channels.yaml]
                                          set a user's password (read from standard input)
  ferry user remove <name> [-c channels.yaml]
                                          remove a user (their sessions and API token stop working)
  ferry user list [-c channels.yaml]      users, roles and API tokens
  ferry user token <name> [-c channels.yaml]
                                          make a new API token for a user (replacing theirs); printed once`;

export interface UserCommandIo {
  stdin: NodeJS.ReadStream;
  usage(message: string): FerryError;
}

/** The first line of standard input: all of a pipe, or one typed line (visible, as typed). */
const readPassword = async (io: UserCommandIo, name: string): Promise<string> => {
  let text: string;
  if (io.stdin.isTTY) {
    const prompt = createInterface({ input: io.stdin, output: process.stderr });
    text = await new Promise<string>((resolve) => prompt.question(`password for ${name} (shown as typed): `, resolve));
    prompt.close();
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk));
    text = Buffer.concat(chunks).toString('utf8');
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password === '') throw io.usage(`no password: pipe it in, e.g. \`echo 'a long passphrase' | ferry user add ${name} --role viewer\``);
  return password;
};

const findUser = (users: User[], name: string, file: string): User => {
  const user = users.find((u) => u.name === name);
  if (!user) throw new FerryError('USER_NOT_FOUND', `no user "${name}" in ${file}`);
  return user;
};

export const userCommand = async (args: string[], io: UserCommandIo): Promise<number> => {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c', default: 'channels.yaml' }, role: { type: 'string' } },
  });
  const actions = ['add', 'passwd', 'remove', 'list', 'token'];
  if (!action || !actions.includes(action)) throw io.usage(`ferry user needs ${actions.join(', ')}${action ? ` (got "${action}")` : ''}`);
  if (positionals.length !== (action === 'list' ? 0 : 1)) throw io.usage(action === 'list' ? 'ferry user list takes no name' : `ferry user ${action} needs one <name>`);
  if (action !== 'add' && values.role !== undefined) throw io.usage(`ferry user ${action} takes no --role`);
  const name = (positionals[0] ?? '').toLowerCase();
  if (action !== 'list' && !userNamePattern.test(name)) throw io.usage(`a user name must be ${userNameRule} (got "${positionals[0]}")`);

  const config = await loadConfig(values.config!);
  const file = config.engine.users;
  const shown = relative(process.cwd(), file) || file;
  const users = await readUsersFile(file);

  switch (action) {
    case 'add': {
      if (!isRole(values.role)) throw io.usage(`ferry user add needs --role ${roles.join('|')}${values.role ? ` (got "${values.role}")` : ''}`);
      if (users.some((u) => u.name === name)) throw new FerryError('USER_EXISTS', `user "${name}" already exists in ${shown} (ferry user passwd ${name} changes the password)`);
      const password = await hashPassword(await readPassword(io, name));
      await writeUsersFile(file, [...users, { name, role: values.role, password }]);
      console.log(`ferry: added ${values.role} "${name}" to ${shown}`);
      return 0;
    }
    case 'passwd': {
      const user = findUser(users, name, shown);
      user.password = await hashPassword(await readPassword(io, name));
      await writeUsersFile(file, users);
      console.log(`ferry: changed the password of "${name}" in ${shown}; existing sessions stay logged in until they end`);
      return 0;
    }
    case 'remove': {
      findUser(users, name, shown);
      await writeUsersFile(
        file,
        users.filter((u) => u.name !== name),
      );
      console.log(`ferry: removed "${name}" from ${shown}`);
      return 0;
    }
    case 'token': {
      const user = findUser(users, name, shown);
      const { token, sha256 } = newApiToken();
      user.token = { sha256, createdAt: new Date().toISOString() };
      await writeUsersFile(file, users);
      console.log(token);
      console.error(`ferry: new API token for "${name}" (${user.role}); this is the only time it is shown, and it replaces any earlier one. Use it as: Authorization: Bearer <token>`);
      return 0;
    }
    default: {
      if (users.length === 0) {
        console.error(`ferry: no users in ${shown}: the admin API listens on loopback only and needs no login (add one with: ferry user add <name> --role admin)`);
        return 0;
      }
      const time = (iso: string): string => `${iso.slice(0, 19).replace('T', ' ')}Z`;
      const rows = [['NAME', 'ROLE', 'API TOKEN'], ...users.map((u) => [u.name, u.role, u.token ? `made ${time(u.token.createdAt)}` : '-'])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
      for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
      return 0;
    }
  }
};
