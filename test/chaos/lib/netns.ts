import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A small network of Linux network namespaces for the chaos suite: a hub namespace holding a bridge, one
 * namespace per node (each with a veth into the bridge and its own address), and a veth from the test's own
 * namespace into the bridge, so the test reaches every node and the nodes reach each other. Link faults
 * (netem delay and loss when the kernel has netem; otherwise loss by nftables) and partitions (nftables
 * drop rules) live inside the node namespaces, so deleting the namespaces removes every rule the lab made.
 * Names carry the test's pid, so a later run sweeps what a killed run left behind.
 */

/** Prefix of every namespace a lab makes: `anvch-<pid>-<lab>-…`. */
const PREFIX = 'anvch';
/** The table of a node's rules (inside the node's namespace). */
const TABLE = 'anvil_chaos';

/** Link faults of one node's link (both directions of its traffic). */
export interface LinkFaults {
  readonly delayMs?: number;
  readonly jitterMs?: number;
  /** Packet loss in percent, each way. */
  readonly lossPct?: number;
}

/** What a {@link NetLab.shape} call could apply: netem, or loss by nftables with the reason delay was skipped. */
export interface ShapeResult {
  readonly via: 'netem' | 'nftables';
  /** Set when delay or jitter was asked for and could not be applied. */
  readonly delaySkipped?: string;
}

interface NodeState {
  readonly ns: string;
  readonly ip: string;
  partitioned: boolean;
  lossPermille: number;
}

function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });
}

function tryRun(cmd: string, args: readonly string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) return r.error.message;
  return r.status === 0 ? undefined : (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n')[0];
}

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const listNamespaces = (): string[] =>
  run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n !== '');

/** Why labs cannot be made here (not root, a tool missing, namespaces refused), or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (network namespaces, veth links and nftables rules need root)';
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
  ] as const) {
    const why = tryRun(tool, ['-V']);
    if (why !== undefined) return `\`${tool}\` is not available (${why}); install the Debian package ${pkg}`;
  }
  const probe = `${PREFIX}-${process.pid}-probe`;
  const why = tryRun('ip', ['netns', 'add', probe]);
  if (why !== undefined) return `ip netns add failed (${why})`;
  const nft = tryRun('ip', ['netns', 'exec', probe, 'nft', 'add', 'table', 'inet', TABLE]);
  tryRun('ip', ['netns', 'del', probe]);
  if (nft !== undefined) return `nftables refused a table in a namespace (${nft})`;
  return undefined;
}

/** Deletes namespaces (and their links and rules) left by labs of processes that are gone. Returns their names. */
export function sweepStaleLabs(): string[] {
  const swept: string[] = [];
  for (const ns of listNamespaces()) {
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(ns);
    if (m === null || pidAlive(Number(m[1]))) continue;
    if (tryRun('ip', ['netns', 'del', ns]) === undefined) swept.push(ns);
  }
  return swept;
}

/** Labs not closed yet: removed when the process exits (a failed test still cleans up). */
const openLabs = new Set<NetLab>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const lab of openLabs) lab.removeNow();
  });
}

let labs = 0;

export class NetLab {
  readonly nodes: readonly NodeState[];
  private readonly children = new Set<ChildProcess>();
  private closed = false;
  private netemWhy: string | undefined;

  private constructor(
    readonly tag: string,
    readonly hub: string,
    readonly rootIf: string,
    /** The test process's address on the lab's subnet. */
    readonly hostIp: string,
    nodes: NodeState[],
  ) {
    this.nodes = nodes;
  }

  /** Why netem cannot be used here (undefined when it can). */
  get netemMissing(): string | undefined {
    return this.netemWhy;
  }

  /**
   * Makes a lab of `n` nodes (1 … 200). Call {@link netnsUnavailable} first. On any failure, what was made
   * is removed before the error is thrown.
   */
  static open(n: number): NetLab {
    if (!Number.isInteger(n) || n < 1 || n > 200) throw new RangeError(`a lab has 1 … 200 nodes (got ${n})`);
    hookExit();
    const k = labs++;
    const tag = `${PREFIX}-${process.pid}-${k}`;
    const hub = `${tag}-hub`;
    // Interface names are at most 15 bytes.
    const rootIf = `ach${(process.pid * 64 + (k % 64)).toString(36)}`.slice(0, 15);
    const used = run('ip', ['-4', 'addr']);
    let subnet = -1;
    for (let j = 0; j < 250 && subnet < 0; j++) {
      const x = ((process.pid + k + j) % 250) + 1;
      if (!used.includes(` 10.213.${x}.`)) subnet = x;
    }
    if (subnet < 0) throw new Error('no free 10.213.x.0/24 subnet for a lab');
    const base = `10.213.${subnet}`;
    const nodes: NodeState[] = Array.from({ length: n }, (_, i) => ({
      ns: `${tag}-n${i}`,
      ip: `${base}.${10 + i}`,
      partitioned: false,
      lossPermille: 0,
    }));
    const lab = new NetLab(tag, hub, rootIf, `${base}.1`, nodes);
    openLabs.add(lab);
    try {
      run('ip', ['netns', 'add', hub]);
      run('ip', ['-n', hub, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
      run('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);
      run('ip', ['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', 'up0', 'netns', hub]);
      run('ip', ['-n', hub, 'link', 'set', 'up0', 'master', 'br0', 'up']);
      run('ip', ['addr', 'add', `${base}.1/24`, 'dev', rootIf]);
      run('ip', ['link', 'set', rootIf, 'up']);
      for (const [i, node] of nodes.entries()) {
        run('ip', ['netns', 'add', node.ns]);
        run('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
        run('ip', ['-n', hub, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.ns]);
        run('ip', ['-n', hub, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
        run('ip', ['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
        run('ip', ['-n', node.ns, 'link', 'set', 'eth0', 'up']);
        lab.applyRules(i);
      }
      const netem = tryRun('ip', [
        'netns',
        'exec',
        nodes[0]!.ns,
        'tc',
        'qdisc',
        'add',
        'dev',
        'eth0',
        'root',
        'netem',
        'delay',
        '0ms',
      ]);
      if (netem === undefined) run('ip', ['netns', 'exec', nodes[0]!.ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
      lab.netemWhy = netem === undefined ? undefined : `this kernel has no netem qdisc (tc: ${netem})`;
    } catch (e) {
      lab.removeNow();
      throw e;
    }
    return lab;
  }

  /** Applies link faults to node `i`'s link (both directions): netem when there is one, else loss by nftables. */
  shape(i: number, faults: LinkFaults): ShapeResult {
    const node = this.node(i);
    const delay = faults.delayMs ?? 0;
    const jitter = faults.jitterMs ?? 0;
    const loss = faults.lossPct ?? 0;
    if (this.netemMissing === undefined) {
      const args = ['delay', `${delay}ms`, `${jitter}ms`, 'loss', `${loss}%`];
      // netem shapes what leaves an interface: eth0 in the node (its sends), p<i> in the hub (what it receives).
      run('ip', ['netns', 'exec', node.ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', ...args]);
      run('ip', ['netns', 'exec', this.hub, 'tc', 'qdisc', 'replace', 'dev', `p${i}`, 'root', 'netem', ...args]);
      return { via: 'netem' };
    }
    node.lossPermille = Math.round(loss * 10);
    this.applyRules(i);
    return delay > 0 || jitter > 0
      ? { via: 'nftables', delaySkipped: `${this.netemMissing}: delay/jitter not applied, loss by nftables` }
      : { via: 'nftables' };
  }

  /** Cuts node `i` off the lab (nftables drops every packet to or from the lab's subnet) or heals it. */
  partition(i: number, on: boolean): void {
    this.node(i).partitioned = on;
    this.applyRules(i);
  }

  /** Removes link faults and partitions of every node. */
  heal(): void {
    for (const [i, node] of this.nodes.entries()) {
      node.partitioned = false;
      node.lossPermille = 0;
      this.applyRules(i);
      if (this.netemMissing === undefined) {
        tryRun('ip', ['netns', 'exec', node.ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
        tryRun('ip', ['netns', 'exec', this.hub, 'tc', 'qdisc', 'del', 'dev', `p${i}`, 'root']);
      }
    }
  }

  /** The nftables rules of node `i`, as the lab holds them. */
  rules(i: number): string {
    return run('ip', ['netns', 'exec', this.node(i).ns, 'nft', 'list', 'table', 'inet', TABLE]);
  }

  /** Starts `command args…` inside node `i`'s namespace (the child is the command itself: `ip netns exec` execs it). */
  spawnIn(i: number, command: string, args: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.node(i).ns, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Ends every child, deletes every link and namespace (and so every rule) of the lab. Returns what is left (should be nothing). */
  async close(): Promise<string[]> {
    await Promise.all(
      [...this.children].map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
        c.kill('SIGCONT');
        c.kill('SIGKILL');
        await Promise.race([exited, sleep(5_000)]);
      }),
    );
    this.removeNow();
    // A deleted namespace goes once its last user is gone: wait (bounded) until nothing of the lab is listed.
    let left = this.leftovers();
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await sleep(100);
      left = this.leftovers();
    }
    return left;
  }

  /** Namespaces and the root-side link of this lab that still exist. */
  leftovers(): string[] {
    const left = listNamespaces().filter((ns) => ns.startsWith(`${this.tag}-`));
    if (tryRun('ip', ['link', 'show', this.rootIf]) === undefined) left.push(`link ${this.rootIf}`);
    return left;
  }

  /** @internal Synchronous removal (also run at process exit for labs never closed). */
  removeNow(): void {
    if (this.closed) return;
    this.closed = true;
    openLabs.delete(this);
    for (const c of this.children) c.kill('SIGKILL');
    tryRun('ip', ['link', 'del', this.rootIf]);
    for (const node of this.nodes) tryRun('ip', ['netns', 'del', node.ns]);
    tryRun('ip', ['netns', 'del', this.hub]);
  }

  private node(i: number): NodeState {
    const node = this.nodes[i];
    if (node === undefined) throw new RangeError(`no node ${i} in a lab of ${this.nodes.length}`);
    return node;
  }

  /** Replaces node `i`'s table atomically with the rules its state calls for (loopback always passes). */
  private applyRules(i: number): void {
    const node = this.node(i);
    const subnet = `${this.hostIp.slice(0, this.hostIp.lastIndexOf('.'))}.0/24`;
    const chain = (hook: 'input' | 'output') => {
      const lo = hook === 'input' ? 'iifname "lo" accept' : 'oifname "lo" accept';
      const dir = hook === 'input' ? 'saddr' : 'daddr';
      const rules = [lo];
      if (node.partitioned) rules.push(`ip ${dir} ${subnet} drop`);
      if (node.lossPermille > 0) rules.push(`numgen random mod 1000 < ${node.lossPermille} drop`);
      return `chain ${hook} { type filter hook ${hook} priority 0; policy accept; ${rules.join('; ')}; }`;
    };
    const script = `table inet ${TABLE} {}\ndelete table inet ${TABLE}\ntable inet ${TABLE} {\n${chain('input')}\n${chain('output')}\n}\n`;
    run('ip', ['netns', 'exec', node.ns, 'nft', '-f', '-'], script);
  }
}
