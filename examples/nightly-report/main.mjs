// partita example: seed 004's nightly report chain, on a schedule.
//
//   node examples/nightly-report/main.mjs         every day at 05:30 UTC, until Ctrl-C
//   node examples/nightly-report/main.mjs --now   once, within a second, then exits
//
// The old system polled a jobs table every 5 s, created report jobs from @Scheduled crons, chained
// DAILY_REPORT → DAILY_SUMMARY "on success" in a dependency service, and stored a JWT in every job
// row. Here a schedule submits one batch per fire (id `${name}@${fire time}`, so a restart or a
// second engine never runs a fire twice), the report job's trigger submits the delivery batch when
// the report succeeds (id `${report id}>deliver-report`, exactly once), and no credential is
// stored: a handler would fetch its token when it runs.
import { createEngine, defineJob, isFinalStatus } from 'partita';
import { z } from 'zod';

const NOW = process.argv.includes('--now');
const ROLES = ['CASE_WORKER', 'SUPERVISOR', 'ADMIN'];

const dailyReport = defineJob({
  name: 'daily-report',
  input: z.object({ day: z.iso.date() }),
  // One partition per role: each role's report is generated, retried and reported on its own.
  partition: ({ day }) => ROLES.map((role) => ({ key: role, payload: { role, day } })),
  handler: async ({ role, day }) => {
    // A real handler would get a token here, query the warehouse and write the file.
    return { role, day, rows: 10 * (ROLES.indexOf(role) + 1) };
  },
  retry: { attempts: 3, backoffMs: 1_000 },
  // The chain that JobDependencyService configured at run time, declared once: on success, deliver.
  triggers: [{ job: 'deliver-report', when: 'succeeded', input: (report) => ({ reportBatch: report.id }) }],
});

const deliverReport = defineJob({
  name: 'deliver-report',
  input: z.object({ reportBatch: z.string() }),
  partition: ({ reportBatch }) => ROLES.map((role) => ({ key: role, payload: { role, reportBatch } })),
  handler: async ({ role }) => ({ sentTo: `${role.toLowerCase().replace('_', '-')}s@example.com` }),
});

const engine = createEngine({ jobs: [dailyReport, deliverReport], logger: false });
await engine.start(); // opens ./.partita/partita.db; fires missed while down run now (catchUp)

const name = NOW ? 'nightly-report-now' : 'nightly-report';
const schedule = await engine.schedule({
  name,
  cron: NOW ? '* * * * * *' : '30 5 * * *', // --now: the next whole second
  timezone: 'UTC',
  job: dailyReport,
  // A function of the fire time: kept in this process only, so it is given again at every start.
  input: (fireTime) => ({ day: fireTime.toISOString().slice(0, 10) }),
  overlap: 'skip', // a report still running when the next fire comes: that fire is skipped
  catchUp: 'latest', // after downtime, one report for the latest missed day
});
console.log(
  `scheduled ${schedule.name}: "${schedule.cron}" in ${schedule.timezone}, next ${schedule.nextFire}`,
);

if (NOW) {
  // The first fire's report batch, as soon as it is submitted; then no more fires.
  const reportId = await new Promise((resolve) => {
    const off = engine.observe((event) => {
      if (event.type === 'batch' && event.job === 'daily-report') {
        off();
        resolve(event.batchId);
      }
    });
  });
  await engine.unschedule(name); // a demo schedule firing every second is not left in the store
  await engine.wait(reportId); // its trigger has submitted the delivery by the time this resolves
  await engine.wait(`${reportId}>deliver-report`);
  await report(`${reportId}>deliver-report`);
  await engine.stop();
} else {
  engine.observe((event) => {
    if (event.type === 'batch' && event.job === 'deliver-report' && isFinalStatus(event.status))
      void report(event.batchId);
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void engine.stop());
}

/** Print the chain that ended with delivery batch `id`: the report batch, then the delivery. */
async function report(id) {
  const delivery = await engine.get(id);
  const parent = await engine.get(id.slice(0, -'>deliver-report'.length));
  console.log(
    `report   ${parent.status}  ${parent.succeeded} of ${parent.total} roles  (batch ${parent.id})`,
  );
  for await (const p of engine.partitions(parent.id)) console.log(`  ${p.key}: ${p.result.rows} rows`);
  console.log(
    `delivery ${delivery.status}  ${delivery.succeeded} of ${delivery.total} sent  (batch ${delivery.id})`,
  );
  for await (const p of engine.partitions(delivery.id)) console.log(`  ${p.key}: ${p.result.sentTo}`);
}
