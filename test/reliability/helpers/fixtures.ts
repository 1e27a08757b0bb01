/**
 * The placement fixtures every op's property file needs: the context under test, a second context of the same
 * backend (foreign inputs), a side stream, a disposed stream and a disposed context (refused placements).
 */
import { Context } from '../../../lib/context';
import type { Stream } from '../../../lib/stream';

export interface OpFixtures {
  ctx: Context;
  other: Context;
  side: Stream;
  disposedStream: Stream;
  disposedCtx: Context;
}

/**
 * Registers the beforeAll / afterAll that make and free the fixtures of `getCtx()`'s context, and returns the
 * object they fill in (read its fields inside tests only: it is empty until beforeAll has run).
 */
export function opFixtures(getCtx: () => Context): OpFixtures {
  const f = {} as OpFixtures;
  beforeAll(() => {
    const ctx = getCtx();
    const disposedStream = ctx.createStream();
    disposedStream.dispose();
    const disposedCtx = new Context({ device: ctx.backend });
    disposedCtx.dispose();
    Object.assign(f, { ctx, other: new Context({ device: ctx.backend }), side: ctx.createStream(), disposedStream, disposedCtx });
  });
  afterAll(() => {
    f.side.dispose();
    f.other.dispose();
  });
  return f;
}
