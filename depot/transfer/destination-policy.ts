import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Which remote depots this depot may connect to for SEND/PUSH/PULL. Entries are `*`, IPs, CIDRs
 * or `host:port` (validated by the options parser). A host name is resolved once and the depot
 * connects to the address that was checked, so a name cannot be re-pointed between check and use.
 */
export class DestinationPolicy {
  private readonly any: boolean;
  private readonly nets = new BlockList();
  private readonly hostPorts = new Set<string>();

  constructor(entries: readonly string[]) {
    this.any = entries.includes('*');
    for (const e of entries) {
      if (e === '*') continue;
      const cidr = /^([^/]+)\/(\d{1,3})$/.exec(e);
      if (cidr !== null) {
        this.nets.addSubnet(cidr[1]!, Number(cidr[2]), isIP(cidr[1]!) === 6 ? 'ipv6' : 'ipv4');
      } else if (isIP(e) !== 0) {
        this.nets.addAddress(e, isIP(e) === 6 ? 'ipv6' : 'ipv4');
      } else {
        this.hostPorts.add(e.toLowerCase().replace(/^\[(.*)\](:\d+)$/, '$1$2'));
      }
    }
  }

  /**
   * The address to connect to for `host:port`, or undefined when it is not allowed or cannot be
   * resolved (the caller answers both the same way, so the depot is no scanning oracle).
   */
  async resolve(host: string, port: number): Promise<string | undefined> {
    let address: string;
    try {
      address = isIP(host) !== 0 ? host : (await lookup(host)).address;
    } catch {
      return undefined;
    }
    if (this.any) return address;
    if (this.hostPorts.has(`${host.toLowerCase()}:${port}`) || this.hostPorts.has(`${address}:${port}`)) return address;
    return this.nets.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4') ? address : undefined;
  }
}
