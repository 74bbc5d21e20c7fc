import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IbpProtocolError, Status, parseRequest } from '../../ibp/index.js';
import { RawSession, startDepot, type TestDepot } from '../helpers/depot-fixture.js';

function refusal(line: string): { code: string; status: number } {
  try {
    parseRequest(line);
  } catch (err) {
    if (IbpProtocolError.isIbpProtocolError(err)) return { code: err.code, status: err.status };
    throw err;
  }
  throw new Error(`${JSON.stringify(line)} was accepted`);
}

describe('the protocol version token', () => {
  it('is exactly `0` or `1`', () => {
    expect(parseRequest('0 4 3 10')).toMatchObject({ command: 'status', version: 0 });
    expect(parseRequest('1 4 3 10')).toMatchObject({ command: 'status', version: 1 });
  });

  it.each(['00', '01', '001', '2', '10', '99999999999999999999'])('%s names another version: -27', (v) => {
    expect(refusal(`${v} 4 3 10`)).toEqual({ code: 'IBP_ERR_PROTOCOL_VERSION', status: Status.PROT_VERS });
  });

  it.each(['x', '+1', '-1', '1.0', '0x1'])('%s is not a number: -21', (v) => {
    expect(refusal(`${v} 4 3 10`)).toEqual({ code: 'IBP_ERR_BAD_FORMAT', status: Status.BAD_FORMAT });
  });
});

describe('a depot answers another version with -27 and closes', () => {
  let t: TestDepot;
  beforeAll(async () => {
    t = await startDepot();
  });
  afterAll(async () => {
    await t.close();
  });

  it.each(['00', '01'])('`%s 1 …` (ALLOCATE)', async (v) => {
    const s = await RawSession.open(t.port);
    try {
      s.send(`${v} 1 1 2 1 60 10 10\n`);
      expect(await s.line()).toBe('-27 \n');
      expect(await s.closedWithin()).toBe(true);
    } finally {
      s.end();
    }
  });
});
