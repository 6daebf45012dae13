// Raw Piscina's group task: the no-op handler (noop.mjs) for each item in turn, awaited as
// partita's runner awaits each member of a group, and one result per item, in order.
import noop from './noop.mjs';

export default async function noopGroup(items) {
  const results = new Array(items.length);
  for (let i = 0; i < items.length; i++) results[i] = await noop(items[i]);
  return results;
}
