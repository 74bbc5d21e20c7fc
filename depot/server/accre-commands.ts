import { CapType, OK_REPLY, aliasProbeReply, allocateReply, countReply } from '../../ibp/index.js';
import type { AccreRequest, TransferRequest, VecRequest } from '../../ibp/index.js';
import { DepotError, DepotErrorCode, storageError } from '../errors.js';
import type { RangeWriter } from '../core/allocation.js';
import type { CommandWire } from './ring-commands.js';

/** What the ACCRE handlers need beyond the connection's I/O. */
export interface AccreWire extends CommandWire {
  /** Runs a depot-to-depot transfer (absent when transfers are not enabled). */
  readonly transfer?: (req: TransferRequest) => Promise<number>;
}

/**
 * Serves the ACCRE extensions: ALIAS_ALLOCATE (14), ALIAS_MANAGE (15), RENAME (16), PHOEBUS_SEND
 * (17, as a plain SEND), SPLIT (18), MERGE (19), GET_CHKSUM (31), VALIDATE_CHKSUM (32), VEC_WRITE
 * (33) and VEC_READ (35). Reply shapes are the ACCRE depot's (docs/protocol.md).
 */
export async function accreCommand(wire: AccreWire, req: AccreRequest | TransferRequest): Promise<void> {
  const core = wire.core;
  switch (req.command) {
    case 'phoebus_send': {
      if (wire.transfer === undefined) throw new DepotError(DepotErrorCode.UNKNOWN_COMMAND, 'transfers are not enabled');
      const { path: _path, ...rest } = req;
      const moved = await wire.transfer({ ...rest, command: 'send' });
      await wire.send(countReply(moved));
      return;
    }
    case 'send':
    case 'push':
    case 'pull':
      throw new DepotError(DepotErrorCode.INTERNAL, `${req.command} is served by the connection`);
    case 'alias_allocate': {
      const caps = await core.aliasAllocate(req);
      await wire.send(allocateReply(caps.read, caps.write, caps.manage));
      return;
    }
    case 'alias_manage': {
      const probe = await core.aliasManage(req);
      await wire.send(probe === undefined ? OK_REPLY : aliasProbeReply(probe));
      return;
    }
    case 'rename': {
      const caps = core.rename(req.cap);
      await wire.send(allocateReply(caps.read, caps.write, caps.manage));
      return;
    }
    case 'split': {
      const caps = await core.split(req);
      await wire.send(allocateReply(caps.read, caps.write, caps.manage));
      return;
    }
    case 'merge':
      core.merge(req);
      await wire.send(OK_REPLY);
      return;
    case 'get_chksum':
      core.checksumInfo(req.cap);
      await wire.send('1 0 \n'); // IBP_OK CHKSUM_NONE: no ACCRE checksum is kept
      return;
    case 'validate_chksum': {
      const bad = await core.validate(req.cap);
      await wire.send(`1 ${bad}\n`);
      return;
    }
    case 'vec_write':
      return vecWrite(wire, req);
    case 'vec_read':
      return vecRead(wire, req);
  }
}

function total(req: VecRequest): number {
  return req.ranges.reduce((n, r) => n + r.length, 0);
}

/**
 * VEC_WRITE: every range is checked against the max size before the go-ahead; the body (the
 * ranges' bytes, concatenated) is then written range by range, each one committed before the next.
 */
async function vecWrite(wire: AccreWire, req: VecRequest): Promise<void> {
  const core = wire.core;
  const a = await wire.fatalOnRefusal(() => core.lookup(req.cap, CapType.WRITE));
  if (a.ring !== undefined) {
    await wire.fatalOnRefusal(() => {
      throw new DepotError(DepotErrorCode.TYPE_NOT_SUPPORTED, 'vector writes are served for byte arrays only');
    });
  }
  const length = total(req);
  await wire.withWriteLockWithin(a, wire.tokenMs(req.timeoutSec), async () => {
    await wire.fatalOnRefusal(() => {
      core.assertLive(a);
      for (const r of req.ranges) core.checkWriteRange(a, r.offset, r.length);
    });
    await wire.send(OK_REPLY);
    let index = 0;
    let left = req.ranges[0]!.length;
    let writer: RangeWriter | undefined;
    let failure: unknown;
    const next = async () => {
      const r = req.ranges[index]!;
      writer = await a.data.openWriter(r.offset, r.length);
    };
    try {
      await wire.readBody(length, req.timeoutSec, async (chunk) => {
        let at = 0;
        while (at < chunk.length) {
          if (failure !== undefined) return;
          try {
            if (writer === undefined) await next();
            const n = Math.min(left, chunk.length - at);
            await writer!.write(chunk.subarray(at, at + n));
            at += n;
            left -= n;
            if (left === 0) {
              const r = req.ranges[index]!;
              const w = writer!;
              writer = undefined;
              await core.commitWrite(a, w, r.offset, r.length);
              index++;
              if (index < req.ranges.length) left = req.ranges[index]!.length;
            }
          } catch (e) {
            failure = e;
            await writer?.abort().catch(() => undefined);
            writer = undefined;
            return;
          }
        }
      });
    } catch (e) {
      await writer?.abort().catch(() => undefined);
      throw e;
    }
    if (failure !== undefined) throw storageError(failure, `allocation ${a.id}: vector write failed`);
    await wire.send(countReply(length));
  });
}

/** VEC_READ: every range must lie within the data; `1 TOTAL \n` then the ranges' bytes in order. */
async function vecRead(wire: AccreWire, req: VecRequest): Promise<void> {
  const core = wire.core;
  const a = core.lookup(req.cap, CapType.READ);
  for (const r of req.ranges) core.checkReadRange(a, r.offset, r.length);
  const length = total(req);
  await wire.send(countReply(length));
  const deadline = wire.bodyDeadline(length, req.timeoutSec);
  try {
    // Each chunk is sent whole before the next is read, as for LOAD: the store may then lend its
    // own memory (pinned while the socket holds it, so a WRITE meanwhile cannot reach into the reply).
    for (const r of req.ranges) {
      await a.data.read(r.offset, r.length, (chunk) => wire.sendWhole(chunk, deadline), { sinkReleases: true });
    }
  } catch (e) {
    await wire.abortReply(e); // the header is out: the connection is cut
  }
}
