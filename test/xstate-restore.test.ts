import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, setup, spawnChild } from 'xstate';

// Pins the XState restore behaviour that docs/persistence.md describes and the engine works around.
// If a new XState changes it, this test says so and the workaround can be revisited.
describe('what XState does when an actor is restored from a persisted snapshot', () => {
  it('re-creates a spawned child in its state without running its entry again, and does not re-arm its timers', async () => {
    let entries = 0;
    const child = setup({ actions: { work: () => void entries++ } }).createMachine({
      initial: 'running',
      states: { running: { entry: 'work', after: { 20: 'timedOut' } }, timedOut: {} },
    });
    const parent = setup({ actors: { child } }).createMachine({ entry: spawnChild('child', { id: 'c' }) });
    const first = createActor(parent).start();
    const snapshot = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();
    entries = 0;
    const restored = createActor(parent, { snapshot }).start();
    const c = restored.getSnapshot().children.c;
    expect(c?.getSnapshot().value).toBe('running');
    expect(entries).toBe(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(c?.getSnapshot().value).toBe('running'); // the 20 ms `after` never fired
    restored.stop();
  });

  it('runs an active invoked promise again', async () => {
    let runs = 0;
    const machine = setup({
      actors: {
        p: fromPromise(async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 10));
        }),
      },
    }).createMachine({
      initial: 'waiting',
      states: { waiting: { invoke: { src: 'p', onDone: 'done' } }, done: {} },
    });
    const first = createActor(machine).start();
    const snapshot = JSON.parse(JSON.stringify(first.getPersistedSnapshot()));
    first.stop();
    runs = 0;
    const restored = createActor(machine, { snapshot }).start();
    await new Promise<void>((resolve) => restored.subscribe((s) => s.value === 'done' && resolve()));
    expect(runs).toBe(1);
  });
});
