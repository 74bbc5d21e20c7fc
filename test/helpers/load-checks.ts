import type { AllocationCaps } from '../../framework/index.js';
import type { TestDepot } from './depot-fixture.js';

/** The bytes a LOAD of `[0, length)` gives, or its error's message. */
export function loadAll(t: TestDepot, caps: AllocationCaps, length: number): Promise<Buffer | string> {
  return t.client.load(caps.read, 0, length).catch((e: Error) => e.message);
}

/** Whether `bytes` are `length` bytes all equal to `value` (a message otherwise, for the report). */
export function allOf(bytes: Buffer | string, value: number, length: number): true | string {
  if (typeof bytes === 'string') return bytes;
  if (bytes.length !== length) return `${bytes.length} bytes, not ${length}`;
  const i = bytes.findIndex((b) => b !== value);
  return i < 0 ? true : `byte ${i} is ${bytes[i]}, not ${value}`;
}

/** The reply of a WRITE: 'ok' or the error's message. */
export function tryWrite(t: TestDepot, caps: AllocationCaps, offset: number, body: Buffer): Promise<string> {
  return t.client.write(caps.write, offset, body).then(
    () => 'ok',
    (e: Error) => e.message,
  );
}

/** The reply of a STORE (an append): 'ok' or the error's message. */
export function tryStore(t: TestDepot, caps: AllocationCaps, body: Buffer): Promise<string> {
  return t.client.store(caps.write, body).then(
    () => 'ok',
    (e: Error) => e.message,
  );
}
